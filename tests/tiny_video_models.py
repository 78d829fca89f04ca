"""Tiny random-weight LTX-Video and Wan pipelines, built offline and saved like real checkpoints."""

from __future__ import annotations

from pathlib import Path
from typing import Any

# The text side is the only part diffusers' own tests download; these stand-ins are built here.
TEXT_DIM = 32
_VOCABULARY = ["<pad>", "</s>", "<unk>"] + [f"w{i}" for i in range(61)]


def _tokenizer() -> Any:
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {word: index for index, word in enumerate(_VOCABULARY)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    # T5 ends every sequence with </s>; the pipelines count on it for their attention masks.
    tokenizer.post_processor = processors.TemplateProcessing(
        single="$A </s>", special_tokens=[("</s>", vocab["</s>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def _text_encoder() -> Any:
    from transformers import T5Config, T5EncoderModel

    config = T5Config(
        vocab_size=len(_VOCABULARY),
        d_model=TEXT_DIM,
        d_kv=8,
        d_ff=37,
        num_layers=1,
        num_heads=4,
        relative_attention_num_buckets=8,
    )
    return T5EncoderModel(config)


def build_tiny_ltx(directory: Path) -> Path:
    """An LTX-Video pipeline small enough for a CPU: 32x32 pixels and 9 frames in under a second."""
    import torch
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXConditionPipeline,
        LTXVideoTransformer3DModel,
    )

    torch.manual_seed(0)
    transformer = LTXVideoTransformer3DModel(
        in_channels=8,
        out_channels=8,
        patch_size=1,
        patch_size_t=1,
        num_attention_heads=4,
        attention_head_dim=8,
        cross_attention_dim=32,
        num_layers=1,
        caption_channels=TEXT_DIM,
    )
    four = (True, True, False, False)
    vae = AutoencoderKLLTXVideo(
        in_channels=3,
        out_channels=3,
        latent_channels=8,
        block_out_channels=(8,) * 4,
        decoder_block_out_channels=(8,) * 4,
        layers_per_block=(1,) * 5,
        decoder_layers_per_block=(1,) * 5,
        spatio_temporal_scaling=four,
        decoder_spatio_temporal_scaling=four,
        decoder_inject_noise=(False,) * 5,
        upsample_residual=(False,) * 4,
        upsample_factor=(1,) * 4,
        timestep_conditioning=False,
        patch_size=1,
        patch_size_t=1,
        encoder_causal=True,
        decoder_causal=False,
    )
    pipe = LTXConditionPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(),
        text_encoder=_text_encoder(),
        tokenizer=_tokenizer(),
    )
    pipe.save_pretrained(directory)
    return directory


def build_tiny_wan(directory: Path, *, image_to_video: bool, image_size: int = 32) -> Path:
    """A Wan 2.1 pipeline: text to video, or image to video (first, or first and last frame).

    The image-to-video transformer embeds the CLIP tokens of both keyframes, so its
    ``pos_embed_seq_len`` is twice the image tokens of an ``image_size`` square (patch 1).
    """
    import torch
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanPipeline,
        WanTransformer3DModel,
    )

    torch.manual_seed(0)
    vae = AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )
    common: dict[str, Any] = {
        "patch_size": (1, 2, 2),
        "num_attention_heads": 2,
        "attention_head_dim": 12,
        "out_channels": 16,
        "text_dim": TEXT_DIM,
        "freq_dim": 256,
        "ffn_dim": 32,
        "num_layers": 2,
        "cross_attn_norm": True,
        "qk_norm": "rms_norm_across_heads",
        "rope_max_seq_len": 32,
    }
    scheduler = FlowMatchEulerDiscreteScheduler(shift=7.0)
    torch.manual_seed(0)
    if not image_to_video:
        transformer = WanTransformer3DModel(in_channels=16, **common)
        pipe: Any = WanPipeline(
            transformer=transformer,
            vae=vae,
            scheduler=scheduler,
            text_encoder=_text_encoder(),
            tokenizer=_tokenizer(),
        )
        pipe.save_pretrained(directory)
        return directory

    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModelWithProjection

    image_tokens = image_size * image_size + 1  # patch 1, plus the class token
    transformer = WanTransformer3DModel(
        in_channels=36, image_dim=4, pos_embed_seq_len=2 * image_tokens, **common
    )
    torch.manual_seed(0)
    image_encoder = CLIPVisionModelWithProjection(
        CLIPVisionConfig(
            hidden_size=4,
            projection_dim=4,
            num_hidden_layers=2,
            num_attention_heads=2,
            image_size=image_size,
            intermediate_size=16,
            patch_size=1,
        )
    )
    pipe = WanImageToVideoPipeline(
        transformer=transformer,
        vae=vae,
        scheduler=scheduler,
        text_encoder=_text_encoder(),
        tokenizer=_tokenizer(),
        image_encoder=image_encoder,
        image_processor=CLIPImageProcessor(crop_size=image_size, size=image_size),
    )
    pipe.save_pretrained(directory)
    return directory
