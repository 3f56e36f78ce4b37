"""Python code generated from proto/ (OpenConfig gNOI/gNMI subset) by scripts/gen-proto.sh; do not edit."""
