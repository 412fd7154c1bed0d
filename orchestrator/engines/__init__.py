"""A catalog profile as an engine: vLLM engine arguments, the `ray.serve.llm.LLMConfig` and
Serve options of its deployment (`config.py`), and a stub profile's settings (`stub.py`).
Pure functions of the profile, shared by the server, the simulator and the profiler."""
