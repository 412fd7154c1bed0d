"""The serving edge: profiles as ray.serve.llm deployments behind an OpenAI-compatible ingress."""
