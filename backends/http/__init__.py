"""Remote models over HTTP: OpenAI-compatible, llama.cpp, Ollama and the other APIs."""
