"""`morphc garden train HOST.morph -o policy.zip`: train a PPO gardener on a host spec."""
from __future__ import annotations

from pathlib import Path

from .common import UsageError


def register(sub):
    p = sub.add_parser("garden", help="train a PPO gardener policy (docs/gardener.md)",
                       description="Train a MaskablePPO policy that decides when and where to "
                                   "plant seeds in HOST while it trains from scratch, and save it "
                                   "(a zip of config.json + safetensors; nothing is pickled). Use "
                                   "it with `morphc train SPEC --policy ZIP` or "
                                   "`grow { policy(\"ZIP\") }`.")
    gs = p.add_subparsers(dest="garden_command", metavar="ACTION")
    t = gs.add_parser("train", help="train and save a policy")
    t.add_argument("host", metavar="HOST", help="the host .morph spec (its data and train settings)")
    t.add_argument("-o", "--out", required=True, metavar="ZIP", help="where the policy goes")
    t.add_argument("--timesteps", type=int, default=4000, help="PPO environment steps (decisions)")
    t.add_argument("--budget-steps", type=int, default=400,
                   help="an episode's FLOPs budget, in steps of the host")
    t.add_argument("--decide-every", type=int, default=25, help="steps between decisions")
    t.add_argument("--kinds", nargs="+", default=["mlp", "attn"], choices=["mlp", "attn"])
    t.add_argument("--hidden", type=int, help="an mlp seed's hidden units (default 4 x width)")
    t.add_argument("--rent", type=float, default=0.01, help="the parameter rent's coefficient")
    t.add_argument("--data", metavar="SOURCE", help="the episodes' data source (default: the host's)")
    t.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    if getattr(args, "garden_command", None) != "train":
        raise UsageError("usage: morphc garden train HOST -o ZIP (see morphc garden train -h)")
    if not Path(args.host).is_file():
        raise UsageError(f"no such spec: {args.host}")
    for k in ("timesteps", "budget_steps", "decide_every"):
        if getattr(args, k) < 1:
            raise UsageError(f"--{k.replace('_', '-')} must be at least 1")
    try:
        from ..garden.ppo import train_policy
    except ImportError as e:
        raise UsageError(f"the gardener needs {e.name}: pip install 'morphdsl[garden]'") from None
    env = {"budget_steps": args.budget_steps, "decide_every": args.decide_every,
           "kinds": tuple(args.kinds), "hidden": args.hidden, "rent_coef": args.rent,
           "source": args.data}
    r = train_policy(args.host, args.out, timesteps=args.timesteps, seed=args.seed, env_kwargs=env,
                     log=print)
    ent = [e["entropy"] for e in r["entropy"]]
    print(f"wrote {args.out} ({r['timesteps']} steps, {r['episodes']} episodes, {r['seconds']:.0f} s; "
          f"action entropy {ent[0]:.3f} -> {ent[-1]:.3f} nats)" if ent else f"wrote {args.out}")
    return 0
