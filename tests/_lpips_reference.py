"""The ``lpips`` package's own model and forward, loaded with the weights of one of our LPIPS networks: the
reference our slice-by-slice forward is checked against (the package is a test dependency, not a runtime one)."""
from __future__ import annotations

import warnings

import torch


def package_state_dict(ours: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our LPIPSNet state dict in ``lpips.LPIPS``'s key names (its lin layers are registered twice)."""
    sd = {k: v for k, v in ours.items() if not k.startswith("lins.")}
    for k in range(5):
        w = ours[f"lins.{k}.weight"]
        sd[f"lin{k}.model.1.weight"] = w
        sd[f"lins.{k}.model.1.weight"] = w
    return sd


def package_model(m, spatial: bool = False) -> torch.nn.Module:
    """``lpips.LPIPS`` for ``m.net_name`` holding ``m``'s weights (same layouts), in eval mode on m's device;
    ``spatial=True`` returns the package's distance map (each layer's map upsampled to the input size) instead of
    its spatial average (what common_metrics_on_video_quality asks for, then averages)."""
    import lpips

    with warnings.catch_warnings(), torch.device("meta"):
        warnings.simplefilter("ignore")  # torchvision's "pretrained is deprecated"
        pkg = lpips.LPIPS(net=m.net_name, version="0.1", pretrained=False, pnet_rand=True, verbose=False,
                          spatial=spatial)
    pkg.load_state_dict(package_state_dict(m.model.state_dict()), assign=True, strict=True)
    return pkg.eval().requires_grad_(False)


@torch.inference_mode()
def package_forward(m, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The package's forward (every layer of both images kept) with m's weights, in full fp32."""
    from vidtok_bench.precision import full_fp32

    with full_fp32():
        return package_model(m)(x.to(m.device, torch.float32), y.to(m.device, torch.float32)).reshape(-1)
