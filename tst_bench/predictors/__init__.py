"""Inference backends behind LLMPredictorInterface (hf, vllm, Ray pools) and the trainable composition."""
