"""Python code generated from proto/ (OpenConfig gNOI/gNMI subset, dpfd admin API) by scripts/gen-proto.sh; do not edit."""
