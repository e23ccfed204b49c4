"""Model backends: Hugging Face transformers (white-box) and OpenAI-compatible endpoints."""
