"""The differentiable surrogate both optimisers climb (spec section 5): psi, its gap and their gradients.

psi is the mean soft prediction over m noisy copies x + theta * u (softmax of the model's logits, or its
outputs as they are when it returns probabilities); the surrogate gap is ``noise.surrogate_gap(p1, p2)``
of psi's top two entries. Draws are one seeded stream per input (``sampling.unit_noise``), so an input's
value does not depend on the other inputs of its batch or on batch_size.
"""

from __future__ import annotations

import torch

from .sampling import unit_noise

__all__ = ["Surrogate"]


class Surrogate:
    """One call's model, noise family and draw stream; evaluates psi, gap_hat and their gradients."""

    def __init__(self, model, noise, x, *, samples, seed, phase, outputs, batch_size):
        self.model, self.noise, self.outputs, self.batch_size = model, noise, outputs, batch_size
        self.samples, self.seed, self.phase, self.like = samples, seed, phase, x
        self.generator = torch.Generator(device=x.device)

    def draws(self, idx, block):
        """u of one block per input named in idx: (len(idx), m, *D); one seeded stream per input."""
        shape, x = (self.samples, *self.like.shape[1:]), self.like
        common = dict(seed=self.seed, phase=self.phase, block=block, generator=self.generator)
        return torch.stack(
            [unit_noise(self.noise, shape, idx=int(i), device=x.device, dtype=x.dtype, **common) for i in idx]
        )

    def chunks(self, x, scale, u):
        """(rows, noisy) over the B*K*m inputs x_b + scale_bk * u_bj, at most batch_size at a time.

        x: (B, *D); scale: (B, K, *S), S broadcastable to D (K candidates per input); u: (B, m, *D).
        rows: (c,) the candidate b*K + k of each noisy input of the chunk.
        """
        B, K, m = scale.shape[0], scale.shape[1], u.shape[1]
        scale_flat, u_flat, total = scale.flatten(0, 1), u.flatten(0, 1), B * K * m
        for start in range(0, total, self.batch_size):
            i = torch.arange(start, min(start + self.batch_size, total), device=x.device)
            rows, j = i // m, i % m
            yield rows, torch.addcmul(x[rows // K], scale_flat[rows], u_flat[rows // K * m + j])

    def probs(self, noisy):
        out = self.model(noisy)
        return (out.softmax(dim=1) if self.outputs == "logits" else out).float()

    def mean_probs(self, x, scale, u):
        """psi: (B, K, C), the mean over the m draws of the soft prediction at x + scale * u."""
        psi = None
        for rows, noisy in self.chunks(x, scale, u):
            p = self.probs(noisy)
            psi = p.new_zeros(scale.shape[0] * scale.shape[1], p.shape[1]) if psi is None else psi
            psi = psi.index_add(0, rows, p)  # out of place: differentiable
        return (psi / u.shape[1]).view(scale.shape[0], scale.shape[1], -1)

    @torch.no_grad()
    def mean_votes(self, x, scale, u):
        """(B, K, C): the fraction of the m draws at x + scale * u that the model assigns to each class.

        Hard votes, as certification counts them (not differentiable; used by the votes search).
        """
        votes = None
        for rows, noisy in self.chunks(x, scale, u):
            out = self.model(noisy)
            hits = torch.nn.functional.one_hot(out.argmax(dim=1), out.shape[1]).to(torch.float32)
            votes = hits.new_zeros(scale.shape[0] * scale.shape[1], out.shape[1]) if votes is None else votes
            votes.index_add_(0, rows, hits)
        return (votes / u.shape[1]).view(scale.shape[0], scale.shape[1], -1)

    def gap(self, psi):
        top = psi.topk(2, dim=-1).values
        return self.noise.surrogate_gap(top[..., 0], top[..., 1])

    def value_and_grad(self, objective, x, scale, idx, block):
        """objective(psi, scale) (B,) over block's draws, and its gradient wrt scale (B, *S).

        Inputs share forward passes in groups of batch_size // samples (one forward and one backward
        pass each). When samples > batch_size an input takes two passes: psi without a graph, then
        chunked vector-Jacobian products dJ/dpsi . dpsi/dscale, so memory stays at batch_size rows.
        """
        values, grads, group = [], [], max(1, self.batch_size // self.samples)
        for lo in range(0, x.shape[0], group):
            xs, u = x[lo : lo + group], self.draws(idx[lo : lo + group], block)
            s = scale[lo : lo + group].detach().requires_grad_(True)
            if self.samples <= self.batch_size:
                value = objective(self.mean_probs(xs, s.unsqueeze(1), u)[:, 0], s)
                grad = torch.autograd.grad(value.sum(), s)[0]
            else:
                with torch.no_grad():
                    psi = self.mean_probs(xs, s.unsqueeze(1), u)[:, 0]
                value = objective(psi.requires_grad_(True), s)
                g_psi, grad = torch.autograd.grad(value.sum(), (psi, s))
                for rows, noisy in self.chunks(xs, s.unsqueeze(1), u):
                    vjp = (self.probs(noisy) * g_psi[rows]).sum() / self.samples
                    grad = grad + torch.autograd.grad(vjp, s)[0]
            values.append(value.detach())
            grads.append(grad)
        return torch.cat(values), torch.cat(grads)

    def passes(self, steps):
        """(forward, backward) noisy model evaluations per input for ``steps`` gradient steps."""
        return steps * self.samples * (1 + (self.samples > self.batch_size)), steps * self.samples
