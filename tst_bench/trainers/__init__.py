"""LoRA trainers behind LLMTrainerInterface (peft in-process, LlamaFactory in a subprocess)."""
