"""Fetch released VidTok checkpoints from the Hugging Face Hub into its standard cache.

``huggingface_hub.hf_hub_download`` reuses a cached file (also offline); when the file is
neither cached nor reachable the user gets one line naming the file, its repo path and how
to pass a local copy instead — after exactly one network attempt (see :func:`fetch_checkpoint`).
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import CheckpointError

VIDTOK_REPO = "microsoft/VidTok"


def vidtok_repo_path(name: str, version: str = "1.0") -> str:
    """Path of a released checkpoint inside ``microsoft/VidTok`` (v1.1 under ``checkpoints/vidtok_v1_1/``)."""
    sub = "checkpoints/vidtok_v1_1" if str(version) == "1.1" else "checkpoints"
    return f"{sub}/{name}.ckpt"


def hub_offline() -> bool:
    """Whether ``HF_HUB_OFFLINE`` is set *now* (huggingface_hub reads it once, when imported)."""
    env = os.environ.get("HF_HUB_OFFLINE")
    if env is not None:
        return env.strip().lower() in ("1", "true", "yes", "on")
    from huggingface_hub import constants

    return bool(constants.HF_HUB_OFFLINE)


def probe(repo_id: str, repo_path: str, revision: str | None) -> str | None:
    """One HEAD request for the file, without retries: None if the hub answers, else why not (a loader given
    ``local_files_only`` when this fails never enters huggingface_hub's ~25 s retry loop)."""
    from huggingface_hub import constants, get_hf_file_metadata, hf_hub_url
    from huggingface_hub.errors import HfHubHTTPError

    url = hf_hub_url(repo_id, repo_path, revision=revision)
    try:
        get_hf_file_metadata(url, timeout=constants.HF_HUB_ETAG_TIMEOUT, retry_on_errors=False)
    except HfHubHTTPError as exc:
        status = getattr(getattr(exc, "response", None), "status_code", None)
        return f"the hub answered HTTP {status}" if status else f"the hub refused it ({type(exc).__name__})"
    except Exception as exc:  # connection refused, DNS, timeout, proxy, offline mode
        detail = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else ""
        return f"the hub at {constants.ENDPOINT} cannot be reached ({type(exc).__name__}{': ' + detail if detail else ''})"
    return None


def fetch_checkpoint(
    repo_path: str,
    repo_id: str = VIDTOK_REPO,
    cache_dir: str | Path | None = None,
    revision: str | None = None,
) -> Path:
    """Local path of ``repo_id/repo_path``, downloading it into the HF cache if needed.

    Exactly one network attempt: ``hf_hub_download`` alone retries an unreachable hub with
    backoff (about 25 s of "Retrying in 8s" before it gives up), so one HEAD request without
    retries decides; when it fails, or ``HF_HUB_OFFLINE`` is set, only the cache is used.
    """
    from huggingface_hub import hf_hub_download

    problem = "HF_HUB_OFFLINE is set" if hub_offline() else probe(repo_id, repo_path, revision)
    try:
        local = hf_hub_download(
            repo_id=repo_id,
            filename=repo_path,
            revision=revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
            local_files_only=problem is not None,
        )
    except Exception as exc:  # not cached, missing file, HTTP error: all end the same way for the user
        why = f"{problem} and it is not in the local cache" if problem else type(exc).__name__
        raise CheckpointError(
            f"cannot get checkpoint {Path(repo_path).name} from the Hugging Face repo {repo_id} "
            f"(path {repo_path}): {why}; download it where there is network (`hf download {repo_id} {repo_path}` "
            "prints its PATH) and pass tokenizer.checkpoint=PATH"
        ) from None
    return Path(local)
