"""Kubernetes access for the controller: a small dynamic client, informers and events."""
