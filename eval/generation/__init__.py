"""Answer generation: streaming LLM backends (transformers, ChatGLM's `stream_chat`, OpenAI-compatible
endpoints), prompts, and the answer step of a run row."""
