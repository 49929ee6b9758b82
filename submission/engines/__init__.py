"""Engines: training (unsloth, peft) and generation (vllm, hf) behind the Protocols of api.py;
factory.py picks them.

Engines see prompt strings, token ids and adapter folders — never ARC semantics. Heavy imports
(torch, vllm, unsloth, transformers, peft) happen inside the implementations.
"""
