"""Ray job: train raytag's networks on the cluster (thin wrapper over ``raytag train``).

    ray job submit --working-dir . --runtime-env cluster/runtime_env.yaml -- \
        python jobs/train.py --data s3://bucket/synth --workers 4 --use-gpu \
        --storage s3://bucket/raytag-runs --out s3://bucket/raytag-models --name exp1

Inside a Ray job ``RAY_ADDRESS`` is set, so this joins the cluster instead of starting a
local Ray. Rerunning the same ``--name``/``--storage`` resumes from the last checkpoint.
"""

import sys

from raytag.cli import main

if __name__ == "__main__":
    sys.exit(main(["train", *sys.argv[1:]]))
