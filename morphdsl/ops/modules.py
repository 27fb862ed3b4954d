"""nn.Modules behind the ops. Shape comments follow nanoGPT: B batch, T time, C channels,
L lanes, P petals, nh heads, hs head size."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F


def inv_softplus(y: torch.Tensor) -> torch.Tensor:
    return y + torch.log(-torch.expm1(-y))


def softplus(x: torch.Tensor) -> torch.Tensor:
    """log(1 + e^x), smooth everywhere: max(x, 0) + log1p(e^-|x|), with no overflow for large
    |x|. (torch's F.softplus returns x itself above x = 20, a jump of e^-20 that is not convex:
    the function a convexity proof certifies must be the one that runs.)"""
    return torch.logaddexp(x, x.new_zeros(()))


class LaneLinear(nn.Module):
    """A block-diagonal linear map: lane l of the output reads only lane l of the input."""

    def __init__(self, lanes: int, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        self.lanes, self.d_in, self.d_out = lanes, d_in, d_out
        self.weight = nn.Parameter(torch.empty(lanes, d_out, d_in))
        self.bias = nn.Parameter(torch.zeros(lanes, d_out)) if bias else None
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, x):  # (B, T, L*d_in) -> (B, T, L*d_out)
        B, T, _ = x.shape
        y = torch.einsum("btli,loi->btlo", x.view(B, T, self.lanes, self.d_in), self.weight)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(B, T, self.lanes * self.d_out)


class NonnegLinear(nn.Module):
    """y = x W^T + b with W = softplus(weight_raw) >= 0 (a reparametrisation, so it holds
    through any optimizer step)."""

    def __init__(self, d_in: int, d_out: int, bias: bool = True):
        super().__init__()
        self.weight_raw = nn.Parameter(inv_softplus(torch.rand(d_out, d_in) / d_in + 1e-4))
        self.bias = nn.Parameter(torch.zeros(d_out)) if bias else None

    @property
    def weight(self):
        return F.softplus(self.weight_raw)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)


class _Linear(nn.Linear):
    """nn.Linear without its kaiming init (make_linear draws the init): allocating a compiled
    model's linears costs no random draws and no meta-device decompositions."""

    def reset_parameters(self) -> None:
        pass


def make_linear(d_in: int, d_out: int, bias: bool, lanes: int | None, nonneg: bool = False):
    if nonneg:
        if lanes:
            raise ValueError("nonneg lanes not supported")
        return NonnegLinear(d_in, d_out, bias)
    if lanes:
        return LaneLinear(lanes, d_in // lanes, d_out // lanes, bias)
    lin = _Linear(d_in, d_out, bias=bias)  # no default init: it would be overwritten at once
    nn.init.normal_(lin.weight, std=0.02)
    if bias:
        nn.init.zeros_(lin.bias)
    return lin


class PosEmbed(nn.Module):
    def __init__(self, ctx: int, dim: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(ctx, dim) * 0.02)

    def forward(self, x):  # (B, T, C)
        return x + self.weight[: x.shape[1]]


class Norm(nn.Module):
    """LayerNorm or RMSNorm, over all channels or per lane."""

    def __init__(self, dim: int, kind: str, eps: float, bias: bool, lanes: int | None):
        super().__init__()
        self.kind, self.eps, self.lanes, self.dim = kind, eps, lanes or 1, dim
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if (bias and kind == "layernorm") else None

    def forward(self, x):  # (B, T, C)
        B, T, C = x.shape
        L = self.lanes
        if L == 1:
            if self.kind == "layernorm":
                return F.layer_norm(x, (C,), self.weight, self.bias, self.eps)
            return F.rms_norm(x, (C,), self.weight, self.eps)
        h = x.view(B, T, L, C // L)
        if self.kind == "layernorm":
            h = F.layer_norm(h, (C // L,), None, None, self.eps)
        else:
            h = F.rms_norm(h, (C // L,), None, self.eps)
        y = h.reshape(B, T, C) * self.weight
        return y + self.bias if self.bias is not None else y


def rope_tables(T: int, rot: int, theta: float, device=None, dtype=torch.float32):
    """cos, sin of shape (T, rot) for rotary embeddings (the rotate-half layout of GPT-NeoX and
    Hugging Face Llama: channel i pairs with i + rot/2)."""
    inv = 1.0 / theta ** (torch.arange(0, rot, 2, device=device, dtype=torch.float64) / rot)
    ang = torch.arange(T, device=device, dtype=torch.float64)[:, None] * inv[None]
    ang = torch.cat([ang, ang], dim=-1)
    return ang.cos().to(dtype), ang.sin().to(dtype)


def rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, rot: int) -> torch.Tensor:
    """Rotate the first `rot` channels of the last dim of x by (cos, sin), broadcast."""
    r, rest = x[..., :rot], x[..., rot:]
    h = rot // 2
    rotated = torch.cat([-r[..., h:], r[..., :h]], dim=-1)
    return torch.cat([r * cos + rotated * sin, rest], dim=-1)


def split_qkv(x: torch.Tensor, heads: int, kv_heads: int, hs: int, lanes: int | None):
    """q (B, nh, T, hs), k and v (B, nkv, T, hs) of a packed projection x (B, T, C).

    Layout: [q | k | v] (nh, nkv, nkv heads of hs channels); inside lanes each lane holds its
    own [q | k | v] (the per-lane rows of a lane linear)."""
    B, T, _ = x.shape
    if lanes:  # (B, T, L, 3, nh/L, hs)
        qkv = x.view(B, T, lanes, 3, heads // lanes, hs)
        return tuple(qkv[:, :, :, i].reshape(B, T, heads, hs).transpose(1, 2) for i in range(3))
    q, k, v = x.split([heads * hs, kv_heads * hs, kv_heads * hs], dim=2)
    return (q.view(B, T, heads, hs).transpose(1, 2), k.reshape(B, T, kv_heads, hs).transpose(1, 2),
            v.reshape(B, T, kv_heads, hs).transpose(1, 2))


class Rope(nn.Module):
    """Rotary position embeddings on a packed [q | k | v] projection: the first `rot` channels
    of every query and key head are rotated by position; values pass unchanged."""

    def __init__(self, heads, kv_heads, head_dim, rot, theta=10000.0, lanes=None):
        super().__init__()
        self.heads, self.kv_heads, self.hs = heads, kv_heads, head_dim
        self.rot, self.theta, self.lanes = rot, theta, lanes

    def forward(self, x):  # (B, T, C) -> (B, T, C)
        B, T, C = x.shape
        cos, sin = rope_tables(T, self.rot, self.theta, x.device, x.dtype)
        cos, sin = cos[:, None], sin[:, None]  # (T, 1, rot): over heads
        hs = self.hs
        if self.lanes:  # each lane's [q | k] rotated, its v kept
            L = self.lanes
            h = x.view(B, T, L, 3, self.heads // L, hs)
            qk = rotate(h[:, :, :, :2], cos[:, None, None], sin[:, None, None], self.rot)
            return torch.cat([qk, h[:, :, :, 2:]], dim=3).reshape(B, T, C)
        nq, nk = self.heads * hs, self.kv_heads * hs
        q = rotate(x[..., :nq].view(B, T, self.heads, hs), cos, sin, self.rot)
        k = rotate(x[..., nq:nq + nk].view(B, T, self.kv_heads, hs), cos, sin, self.rot)
        return torch.cat([q.reshape(B, T, nq), k.reshape(B, T, nk), x[..., nq + nk:]], dim=-1)


class SDPA(nn.Module):
    """Scaled dot-product attention over a packed [q | k | v] projection (causal by default);
    query head i reads key/value head i // (heads / kv_heads) (grouped-query attention)."""

    def __init__(self, heads, kv_heads, head_dim, causal=True, dropout=0.0, lanes=None):
        super().__init__()
        self.heads, self.kv_heads, self.hs = heads, kv_heads, head_dim
        self.causal, self.dropout, self.lanes = causal, dropout, lanes

    def forward(self, x):  # (B, T, (nh + 2 nkv) hs) -> (B, T, nh hs)
        B, T, _ = x.shape
        nh = self.heads
        q, k, v = split_qkv(x, nh, self.kv_heads, self.hs, self.lanes)
        if self.kv_heads != nh:
            g = nh // self.kv_heads
            k, v = k.repeat_interleave(g, dim=1), v.repeat_interleave(g, dim=1)
        y = F.scaled_dot_product_attention(
            q, k, v, is_causal=self.causal, dropout_p=self.dropout if self.training else 0.0)
        return y.transpose(1, 2).reshape(B, T, nh * self.hs)


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    """GPT-2's GELU: 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""
    return F.gelu(x, approximate="tanh")


_ACTS = {
    "relu": F.relu, "gelu": F.gelu, "gelu_tanh": gelu_tanh, "silu": F.silu, "softplus": softplus,
    "tanh": torch.tanh, "sigmoid": torch.sigmoid,
}
GATED = {"swiglu": F.silu, "geglu": F.gelu}  # act(gate) * up: fc holds [gate; up] rows


class MLP(nn.Module):
    """fc -> act -> proj. A gated act (swiglu, geglu) makes fc produce [gate; up] (per lane when
    partitioned) and computes act(gate) * up, as in Llama's SwiGLU MLP."""

    def __init__(self, dim, hidden, act="gelu", bias=True, lanes=None, dropout=0.0):
        super().__init__()
        self.gated = act in GATED
        self.fc = make_linear(dim, 2 * hidden if self.gated else hidden, bias, lanes)
        self.proj = make_linear(hidden, dim, bias, lanes)
        self.act_name, self.hidden, self.lanes = act, hidden, lanes or 1
        self.act = GATED[act] if self.gated else _ACTS[act]
        self.dropout = dropout

    def forward(self, x):  # (B, T, C) -> (B, T, hidden) -> (B, T, C)
        h = self.fc(x)
        if self.gated:  # (B, T, L, 2, H/L): each lane holds its own [gate; up]
            B, T, _ = h.shape
            h = h.view(B, T, self.lanes, 2, self.hidden // self.lanes)
            h = (self.act(h[:, :, :, 0]) * h[:, :, :, 1]).reshape(B, T, self.hidden)
        else:
            h = self.act(h)
        y = self.proj(h)
        return F.dropout(y, self.dropout, self.training) if self.dropout else y


class Hull(nn.Module):
    """P input-convex petals (ICNNs, Amos et al. 2017) per lane, pooled convexly.

    Petal p: z1 = g(W0 x + b0); z_{k+1} = g(Wz_k z_k + Wx_k x + b_k); y = Wz_out z + Wx_out x + b,
    with every Wz = softplus(raw) >= 0 and g convex nondecreasing. Pooling over petals is max,
    logsumexp, mean or a nonneg weighted sum, gated by the buffer `alpha` (1 = active petal,
    0 = a newly grown petal that does not yet contribute; a constant, so convexity is kept).
    Parameters carry a lane dim L (1 outside partitions) and a petal dim P.
    """

    def __init__(self, dim, petals, layers, width, out, pool, act="relu", slope=0.01, lanes=None):
        super().__init__()
        L = lanes or 1
        self.L, self.P, self.layers, self.pool, self.act_name, self.slope = L, petals, layers, pool, act, slope
        d, o, w = dim // L, out // L, width
        self.d, self.o, self.w = d, o, w
        P = petals
        self.w0 = nn.Parameter(torch.randn(L, P, w, d) / math.sqrt(d))
        self.b0 = nn.Parameter(torch.zeros(L, P, w))
        for k in range(1, layers):
            setattr(self, f"wz{k}", nn.Parameter(inv_softplus(torch.rand(L, P, w, w) / w + 1e-4)))
            setattr(self, f"wx{k}", nn.Parameter(torch.randn(L, P, w, d) / math.sqrt(d)))
            setattr(self, f"b{k}", nn.Parameter(torch.zeros(L, P, w)))
        self.wz_out = nn.Parameter(inv_softplus(torch.rand(L, P, o, w) / w + 1e-4))
        self.wx_out = nn.Parameter(torch.randn(L, P, o, d) * 0.02)
        self.b_out = nn.Parameter(torch.zeros(L, P, o))
        if pool == "sum":
            self.mix_raw = nn.Parameter(inv_softplus(torch.full((L, P), 1.0 / P)))
        self.register_buffer("alpha", torch.ones(L, P))

    def g(self, h):
        if self.act_name == "relu":
            return F.relu(h)
        if self.act_name == "softplus":
            return softplus(h)
        return F.leaky_relu(h, self.slope)

    def forward(self, x):  # (B, T, L*d) -> (B, T, L*o)
        B, T, _ = x.shape
        xl = x.view(B, T, self.L, self.d)
        z = self.g(torch.einsum("btld,lpwd->btlpw", xl, self.w0) + self.b0)  # (B, T, L, P, w)
        for k in range(1, self.layers):
            wz = F.softplus(getattr(self, f"wz{k}"))
            z = self.g(torch.einsum("btlpv,lpwv->btlpw", z, wz)
                       + torch.einsum("btld,lpwd->btlpw", xl, getattr(self, f"wx{k}"))
                       + getattr(self, f"b{k}"))
        y = (torch.einsum("btlpw,lpow->btlpo", z, F.softplus(self.wz_out))
             + torch.einsum("btld,lpod->btlpo", xl, self.wx_out) + self.b_out)  # (B, T, L, P, o)
        a = self.alpha[..., None]  # (L, P, 1)
        if self.pool == "max":
            y = torch.amax(y + torch.log(a), dim=3)
        elif self.pool == "logsumexp":
            y = torch.logsumexp(y + torch.log(a), dim=3)
        elif self.pool == "mean":
            y = (y * a).sum(3) / a.sum(1)  # (B, T, L, o) / (L, 1)
        else:  # nonneg weighted sum
            y = (y * (a * F.softplus(self.mix_raw)[..., None])).sum(3)
        return y.reshape(B, T, self.L * self.o)


def sinkhorn(logits: torch.Tensor, iters: int) -> torch.Tensor:
    """A doubly-stochastic matrix from logits by alternating row/column normalisation."""
    la = logits
    for _ in range(iters):
        la = la - torch.logsumexp(la, dim=1, keepdim=True)
        la = la - torch.logsumexp(la, dim=0, keepdim=True)
    return la.exp()


class LaneMixer(nn.Module):
    """Mixes lanes with a learned doubly-stochastic matrix M: out lane i = sum_j M_ij lane j."""

    def __init__(self, lanes: int, iters: int = 10):
        super().__init__()
        self.lanes, self.iters = lanes, iters
        self.logits = nn.Parameter(torch.eye(lanes) * 4.0)

    def forward(self, x):  # (B, T, L*d)
        B, T, C = x.shape
        M = sinkhorn(self.logits, self.iters)
        y = torch.einsum("ij,btjd->btid", M, x.view(B, T, self.lanes, C // self.lanes))
        return y.reshape(B, T, C)
