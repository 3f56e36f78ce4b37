"""dpfctl: the operator's command line."""
