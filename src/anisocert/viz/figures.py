"""Drawing for anisocert.viz.visualize and anisocert.viz.toy: toy landscapes with regions, theta maps and
perturbations. matplotlib is imported inside the functions and figures are drawn on the Agg canvas without
pyplot, so drawing works headless. Every figure is one paper column wide (3.5 in); PNG at 300 dpi and PDF.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, InvalidParameterError
from .plots import _STYLE, save_figure

__all__ = [
    "IMAGE_FIGSIZE",
    "PERTURBATION_FIGSIZE",
    "plot_perturbation",
    "plot_theta_map",
    "plot_toy",
    "region_boundary",
    "toy_figsize",
]
__all__ += ["toy_figure"]

IMAGE_FIGSIZE = (3.5, 1.9)  # inches: a theta map figure
PERTURBATION_FIGSIZE = (3.5, 2.4)  # inches: a perturbation figure
_SUB = {"l2": "₂", "l1": "₁"}
_PANEL_HEIGHT = 2.6  # inches per toy panel at column width
_LEGEND_HEIGHT = 0.9  # inches for the toy figure's colorbar and legend


# ---------------------------------------------------------------------------------------------------- toy


def region_boundary(region, num: int = 2001) -> np.ndarray:
    """Points (num, 2) on the boundary ||(z - center) / theta||_p = gap of a 2-D region, as a closed curve.

    l2: center + gap * theta * (cos t, sin t). l1: center + gap * theta * (sgn(c) c^2, sgn(s) s^2) with
    c = cos t, s = sin t, so |d_0| / theta_0 + |d_1| / theta_1 = gap (c^2 + s^2) = gap exactly; it runs
    along the edges of the cross-polytope through its four vertices (t = 0, pi/2, pi, 3 pi / 2).
    """
    if region.dim != 2:
        raise InvalidParameterError(f"region has {region.dim} dimensions; only 2-D regions can be drawn")
    t = np.linspace(0.0, 2.0 * np.pi, num)
    t[-1] = 0.0  # close the curve exactly
    c, s = np.cos(t), np.sin(t)
    if region.norm == "l1":
        c, s = np.sign(c) * c * c, np.sign(s) * s * s
    return region.center + region.axes * np.stack([c, s], axis=1)


def toy_figsize(panels: int) -> tuple[float, float]:
    """(width, height) in inches of a toy figure with `panels` stacked panels: paper column width."""
    return (3.5, _PANEL_HEIGHT * panels + _LEGEND_HEIGHT)


_SHAPES = {"l2": ("circles", "ellipses"), "l1": ("diamonds", "cross-polytopes")}
_NAMES = {"l2": ("circle", "ellipse"), "l1": ("diamond", "cross-polytope")}


def _draw_panel(ax, panel, fig):
    """Landscape, data, inputs and regions on one axis; region lines carry gid 'iso-j' / 'ancer-j'.

    Returns the landscape image (for the colorbar)."""
    image = ax.imshow(
        panel.prob,
        origin="lower",
        extent=panel.extent,
        cmap="RdBu_r",
        vmin=0.0,
        vmax=1.0,
        alpha=0.55,
        interpolation="bilinear",
    )
    x0 = np.linspace(panel.extent[0], panel.extent[1], panel.prob.shape[1])
    x1 = np.linspace(panel.extent[2], panel.extent[3], panel.prob.shape[0])
    ax.contour(x0, x1, panel.prob, levels=[0.5], colors="0.25", linewidths=0.6, linestyles="--")
    colors = np.where(panel.point_labels == 1, "tab:red", "tab:blue")
    ax.scatter(panel.points[:, 0], panel.points[:, 1], s=0.6, c=colors, alpha=0.35, linewidths=0)
    for j, (iso, ancer) in enumerate(zip(panel.iso, panel.ancer)):
        if iso.gap > 0:
            pts = region_boundary(iso)
            ax.plot(pts[:, 0], pts[:, 1], "-", color="k", lw=0.9, gid=f"iso-{j}")
        if ancer.gap > 0:
            pts = region_boundary(ancer)
            ax.plot(pts[:, 0], pts[:, 1], "-", color="tab:green", lw=1.1, gid=f"ancer-{j}")
    if _wider_than_the_view(panel):
        _draw_whole_regions(ax, panel)
    certified = (panel.iso_prediction >= 0) | (panel.ancer_prediction >= 0)
    c = panel.centers
    ax.plot(c[certified, 0], c[certified, 1], "o", ms=2.5, mfc="yellow", mec="k", mew=0.5)
    if (~certified).any():
        ax.plot(c[~certified, 0], c[~certified, 1], "x", ms=3.5, color="k", mew=0.8)
    ax.set_xlim(panel.extent[:2])
    ax.set_ylim(panel.extent[2:])
    ax.set_aspect("equal")
    ax.set_xlabel("x₀ (input units)")
    ax.set_ylabel("x₁ (input units)")
    iso_shape, aniso_shape = _SHAPES[panel.norm]
    unit = "std" if panel.noise == "gaussian" else "half-width"
    if panel.settings.memory:
        kind = f"memory-based, {panel.memory_changed} changed by memory"
    else:
        kind = "raw: no memory pass"
    ax.set_title(
        f"{panel.data}, {panel.noise} ({panel.norm}): {iso_shape} vs {aniso_shape}\n"
        f"σ₀ = {panel.sigma:g} ({unit}), n = {panel.settings.n}, α = {panel.settings.alpha:g}\n{kind}"
    )
    return image


def _wider_than_the_view(panel) -> bool:
    """Whether some drawn region reaches outside the panel's view (ANCER's often do, by far)."""
    x0, x1, y0, y1 = panel.extent
    for region in [*panel.iso, *panel.ancer]:
        if region.gap > 0:
            pts = region_boundary(region, num=401)
            if pts[:, 0].min() < x0 or pts[:, 0].max() > x1 or pts[:, 1].min() < y0 or pts[:, 1].max() > y1:
                return True
    return False


def _draw_whole_regions(ax, panel):
    """An inset beside the panel, zoomed out until every region is whole, with the panel's view as a grey
    box: the shapes (ellipses against circles) show even where ANCER's regions dwarf the data."""
    from matplotlib.patches import Rectangle

    inset = ax.inset_axes([1.1, 0.1, 0.6, 0.6])
    curves = []
    for kind, regions, color, lw in (("iso", panel.iso, "k", 0.6), ("ancer", panel.ancer, "tab:green", 0.8)):
        for j, region in enumerate(regions):
            if region.gap > 0:
                pts = region_boundary(region)
                inset.plot(pts[:, 0], pts[:, 1], "-", color=color, lw=lw, gid=f"whole-{kind}-{j}")
                curves.append(pts)
    x0, x1, y0, y1 = panel.extent
    inset.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, ec="0.5", lw=0.6, ls=":"))
    pts = np.concatenate([*curves, [[x0, y0], [x1, y1]]])
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    pad = 0.05 * (hi - lo).max()
    inset.set_xlim(lo[0] - pad, hi[0] + pad)
    inset.set_ylim(lo[1] - pad, hi[1] + pad)
    inset.set_aspect("equal", adjustable="datalim")
    inset.tick_params(labelsize=4, length=1.5, pad=1)
    inset.set_title("zoomed out, every region\nwhole (dotted: the view)", fontsize=5, pad=2)
    inset.set_xlabel("x₀ (input units)", fontsize=4, labelpad=1)
    inset.set_ylabel("x₁ (input units)", fontsize=4, labelpad=2)
    inset.yaxis.set_label_position("right")
    return inset


def _certificates_title(panels: Sequence) -> str:
    """The legend's title: which certificates the regions are (memory-based by default, or raw)."""
    if all(p.settings.memory for p in panels):
        return (
            "memory-based certificates, as a run reports them, each with its input's own theta:\n"
            "regions of different classes never overlap"
        )
    return (
        "raw certificates, each with its input's own theta\n"
        "(no memory pass: regions of different classes may overlap)"
    )


def toy_figure(panels: Sequence):
    """A matplotlib Figure (Agg canvas, no pyplot) with the ToyPanels stacked, one per row.

    Each panel: the landscape P(f(x + e) = 1) at sigma0, the smoothed boundary (P = 1/2), the training
    data, and per input its isotropic and ANCER region from region_boundary (Line2D gid "iso-J" and
    "ancer-J" for input J); one shared colorbar and legend below.
    """
    from matplotlib import rc_context
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    panels = list(panels)
    if not panels:
        raise InvalidParameterError("no panels to draw; pass at least one ToyPanel")
    with rc_context(_STYLE):
        fig = Figure(figsize=toy_figsize(len(panels)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), 1, squeeze=False)[:, 0]
        images = [_draw_panel(ax, panel, fig) for ax, panel in zip(axes, panels)]
        bar = fig.colorbar(images[0], ax=list(axes), location="bottom", shrink=0.8, aspect=40, pad=0.01)
        bar.set_label(f"P(f(x + e) = 1) at σ₀ ({panels[0].settings.draws} draws)")
        norms = {p.norm for p in panels}
        iso_name = " / ".join(_NAMES[nm][0] for nm in sorted(norms, reverse=True))
        aniso_name = " / ".join(_NAMES[nm][1] for nm in sorted(norms, reverse=True))
        handles = [
            Line2D([], [], color="k", lw=0.9, label=f"isotropic DDRS ({iso_name})"),
            Line2D([], [], color="tab:green", lw=1.1, label=f"ANCER ({aniso_name})"),
            Line2D([], [], ls="--", color="0.25", lw=0.6, label="smoothed boundary (P = 1/2)"),
            Line2D(
                [], [], ls="", marker="o", ms=2.5, mfc="yellow", mec="k", mew=0.5, label="certified input"
            ),
            Line2D([], [], ls="", marker="x", ms=3.5, color="k", label="abstained input"),
            Line2D([], [], ls="", marker="o", ms=2, color="tab:blue", label="class 0 (train)"),
            Line2D([], [], ls="", marker="o", ms=2, color="tab:red", label="class 1 (train)"),
        ]
        fig.legend(
            handles=handles,
            loc="outside lower center",
            ncols=2,
            frameon=False,
            title=_certificates_title(panels),
            title_fontsize=6,
        )
    return fig


def plot_toy(panels: Sequence, path_stem: str | os.PathLike) -> list[Path]:
    """Draw the ToyPanels stacked (toy_figsize) and save PATH_STEM.png (300 dpi) and PATH_STEM.pdf."""
    from matplotlib import rc_context

    fig = toy_figure(panels)
    with rc_context(_STYLE):
        return save_figure(fig, path_stem)


# ------------------------------------------------------------------------------------------------- images


def _channels(array: np.ndarray) -> np.ndarray:
    """(C, H, W) view of an input: (H, W) -> (1, H, W); (D,) -> (1, 1, D)."""
    if array.ndim == 3:
        return array
    if array.ndim == 2:
        return array[None]
    if array.ndim == 1:
        return array[None, None]
    raise InputError(f"inputs of shape {array.shape} cannot be drawn; give (D,), (H, W) or (C, H, W) data")


def _show_image(ax, array: np.ndarray, title: str, value_range=(0.0, 1.0), ylabel: bool = True):
    """An input as grey (1 channel) or RGB (3 channels, clipped to value_range) or its first channel."""
    image = _channels(array)
    lo, hi = value_range if value_range else (float(image.min()), float(image.max()))
    if image.shape[0] == 3:
        shown = ax.imshow(np.clip((image.transpose(1, 2, 0) - lo) / (hi - lo + 1e-12), 0.0, 1.0))
    else:
        shown = ax.imshow(image[0], cmap="gray", vmin=min(lo, image.min()), vmax=max(hi, image.max()))
    _pixel_axes(ax, title, ylabel)
    return shown


def _pixel_axes(ax, title: str, ylabel: bool = True) -> None:
    ax.set_title(title)
    ax.set_xlabel("column (px)")
    if ylabel:
        ax.set_ylabel("row (px)")
    ax.tick_params(length=1.5, pad=1)


def _new_figure(panels: int, figsize=IMAGE_FIGSIZE):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, layout="constrained")
    FigureCanvasAgg(fig)
    return fig, fig.subplots(1, panels, squeeze=False)[0]


def plot_theta_map(cert, image, path_stem, *, value_range=(0.0, 1.0)) -> list[Path]:
    """The input beside its theta map (one heat map per channel); PATH_STEM.png (300 dpi) and .pdf.

    For an isotropic certificate the map is constant and the title says there is no anisotropic theta.
    """
    from matplotlib import rc_context

    image = np.asarray(image, dtype=np.float64)
    theta = _channels(cert.theta)
    unit = "std" if cert.noise == "gaussian" else "half-width"
    with rc_context(_STYLE):
        fig, axes = _new_figure(1 + theta.shape[0])
        _show_image(axes[0], image, f"input {cert.idx} (label {cert.label})", value_range)
        lo, hi = float(theta.min()), float(theta.max())
        for c, ax in enumerate(axes[1:]):
            shown = ax.imshow(theta[c], cmap="viridis", vmin=lo, vmax=hi if hi > lo else lo * 1.001 + 1e-12)
            name = "theta" if theta.shape[0] == 1 else f"theta, channel {c}"
            _pixel_axes(ax, name, ylabel=False)
        bar = fig.colorbar(shown, ax=list(axes[1:]), shrink=0.8)
        bar.set_label(f"theta ({unit}, input units)")
        if cert.anisotropic:
            head = f"ANCER theta: min {lo:.3g}, max {hi:.3g}, gap {cert.gap:.3g}, radius {cert.radius:.3g}"
        else:
            head = f"no anisotropic theta ({cert.method} run): theta = {cert.sigma:.3g} everywhere"
        fig.suptitle(f"{head}\n{cert.norm} certificate, prediction {cert.prediction}", fontsize=7)
        return save_figure(fig, path_stem)


def plot_perturbation(pert, path_stem, *, value_range=(0.0, 1.0)) -> list[Path]:
    """Clean input | perturbation d | x + d, with both norms and the smoothed check in the title.

    pert is a visualize.Perturbation; saved as PATH_STEM.png (300 dpi) and .pdf of PERTURBATION_FIGSIZE.
    """
    from matplotlib import rc_context
    from matplotlib.lines import Line2D

    cert = pert.certificate
    p = _SUB[cert.norm]
    d = _channels(pert.d)
    with rc_context(_STYLE):
        fig, axes = _new_figure(3, PERTURBATION_FIGSIZE)
        _show_image(axes[0], pert.x, "clean x", value_range)
        shown_d = d[0] if d.shape[0] == 1 else d.sum(axis=0)
        bound = float(np.abs(shown_d).max()) or 1.0
        im = axes[1].imshow(shown_d, cmap="RdBu_r", vmin=-bound, vmax=bound)
        _pixel_axes(axes[1], "d" if d.shape[0] == 1 else "d (channel sum)", ylabel=False)
        rows, cols = np.nonzero(np.abs(d).sum(axis=0))
        axes[1].plot(cols, rows, ".", ms=1.2, color="k")
        bar = fig.colorbar(im, ax=axes[1], location="bottom", shrink=0.9, pad=0.02, aspect=12)
        bar.set_label("d (input units)")
        _show_image(axes[2], pert.x + pert.d, "x + d", value_range, ylabel=False)
        verdict = "holds" if pert.holds else f"does NOT hold (certified class {cert.prediction})"
        fig.suptitle(
            f"Input {cert.idx}: x + d inside the ANCER region, outside the isotropic ball\n"
            f"‖d/θ‖{p} = {pert.scaled_norm:.4g} = {pert.scaled_norm / cert.gap:.2f} gap;  ‖d‖{p} = "
            f"{pert.d_norm:.4g} = {pert.d_norm / pert.iso_radius:.1f} × isotropic radius {pert.iso_radius:.3g}\n"
            f"smoothed g(x + d) = {pert.check_prediction}: {verdict} (pA lower {pert.check_pA_lower:.3f}, "
            f"{pert.check_n} fresh draws, seed {pert.check_seed})",
            fontsize=6,
        )
        handle = Line2D([], [], ls="", marker=".", ms=3, color="k")
        fig.legend(
            [handle],
            [f"perturbed pixels: the {pert.k} largest theta"],
            loc="outside lower center",
            frameon=False,
        )
        return save_figure(fig, path_stem)
