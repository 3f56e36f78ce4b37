"""DPUDeployment: the DPUSets, DPUServices, DPUServiceInterfaces and DPUServiceChain DPF v24.10 generates from one
object, its DPUServiceTemplates and DPUServiceConfigurations (generate.py, pure), and the work that applies them
through the Kubernetes API and reports the object's conditions (work.py)."""
