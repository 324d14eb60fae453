"""Write the JSON schemas of KEDA's ScaledObject and TriggerAuthentication (keda.sh/v1alpha1).

They come from the pydantic models that cloudcoil-models-keda generated from KEDA's CRDs;
every object that lists its properties is closed (``additionalProperties: false``), as the
API server's strict field validation rejects unknown fields of a structural CRD schema.
Run in a throwaway virtualenv (see PROVENANCE.md), not in the project's:

    pip install cloudcoil-models-keda==2.16.1.0
    python tests/schemas/make_keda_schemas.py tests/schemas
"""
from __future__ import annotations

import json
import sys
from importlib.metadata import version

from cloudcoil.models.keda.v1alpha1 import ScaledObject, TriggerAuthentication


def close(node: object) -> None:
    if isinstance(node, dict):
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        node.pop("title", None)
        for value in node.values():
            close(value)
    elif isinstance(node, list):
        for value in node:
            close(value)


out_dir = sys.argv[1]
MODELS = ((ScaledObject, "scaledobject"), (TriggerAuthentication, "triggerauthentication"))
for model, name in MODELS:
    schema = model.model_json_schema(by_alias=True, mode="validation")
    close(schema)
    schema = {"$schema": "https://json-schema.org/draft/2020-12/schema",
              "$comment": f"KEDA {model.__name__} (keda.sh/v1alpha1) from cloudcoil-models-keda "
                          f"{version('cloudcoil-models-keda')}; see tests/schemas/PROVENANCE.md",
              **schema}
    with open(f"{out_dir}/keda-{name}-v1alpha1.json", "w") as f:
        json.dump(schema, f, indent=1, sort_keys=True)
        f.write("\n")
