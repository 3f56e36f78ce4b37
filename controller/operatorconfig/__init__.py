"""The DPFOperatorConfig: which families of this controller run, pause, MTUs and image pull secrets."""
