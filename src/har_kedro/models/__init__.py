"""Backbones, classifier heads, LoRA and losses for CLIP-family models."""
