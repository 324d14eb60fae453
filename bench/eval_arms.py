"""Evaluate named arms without the blend ablations (the quality tables of docs/model.md).

    python bench/eval_arms.py --dataset amazon-minionerec \
        --data-dir ../shared/data/amazon18-industrial-scientific-minionerec \
        --protocol minionerec --stage test --out out/arms-amazon --arms item-knn,blend,fast,slm
"""

from __future__ import annotations

import argparse
import sys

from stream_rec.evaluation import evaluate
from stream_rec.evaluation.model_arm import model_hooks_factory


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--protocol", required=True)
    parser.add_argument("--stage", default="test", choices=["valid", "test"])
    parser.add_argument("--out", required=True)
    parser.add_argument("--arms", required=True, help="comma-separated arm names")
    args = parser.parse_args()
    names = args.arms.split(",")
    evaluate(args.dataset, args.data_dir, args.protocol, names, out_dir=args.out,
             progress=False, stage=args.stage, ablation=False,
             model_hooks=model_hooks_factory(names),
             command=" ".join(["python bench/eval_arms.py", *sys.argv[1:]]), plots=False)


if __name__ == "__main__":
    main()
