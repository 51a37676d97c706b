"""Fetch released VidTok checkpoints from the Hugging Face Hub into its standard cache.

``huggingface_hub.hf_hub_download`` reuses a cached file (also offline); when the file is
neither cached nor reachable the user gets one line naming the file, its repo path and how
to pass a local copy instead.
"""
from __future__ import annotations

from pathlib import Path

from .errors import CheckpointError

VIDTOK_REPO = "microsoft/VidTok"


def vidtok_repo_path(name: str, version: str = "1.0") -> str:
    """Path of a released checkpoint inside ``microsoft/VidTok`` (v1.1 under ``checkpoints/vidtok_v1_1/``)."""
    sub = "checkpoints/vidtok_v1_1" if str(version) == "1.1" else "checkpoints"
    return f"{sub}/{name}.ckpt"


def fetch_checkpoint(
    repo_path: str,
    repo_id: str = VIDTOK_REPO,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> Path:
    """Local path of ``repo_id/repo_path``, downloading it into the HF cache if needed."""
    try:
        from huggingface_hub import hf_hub_download

        local = hf_hub_download(
            repo_id=repo_id,
            filename=repo_path,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
    except Exception as exc:  # offline, missing file, HTTP error: all end the same way for the user
        why = type(exc).__name__
        raise CheckpointError(
            f"cannot get checkpoint {Path(repo_path).name} from the Hugging Face repo {repo_id} "
            f"(path {repo_path}; {why}); download it yourself and pass tokenizer.checkpoint=PATH"
        ) from None
    return Path(local)
