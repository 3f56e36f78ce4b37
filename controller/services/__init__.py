"""DPUService → ArgoCD, as DPF's DPUService controller does it: one Application per DPU cluster, the AppProjects,
ArgoCD cluster Secrets, namespaces and image-pull Secrets mirrored into the DPU clusters (controller.services.work)."""
