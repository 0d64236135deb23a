"""Transform template.yaml the way ``sam deploy`` does, so that what CloudFormation receives is
what gets linted (``make validate``) and deployed in moto (tests).

Runs in SAM CLI's own environment (``.tools/sam``), whose ``samtranslator`` is the library SAM CLI
transforms with (pinned beside it in the Makefile). Code locations become ``s3://`` URIs, as
``sam package`` makes them, since the translator takes nothing else. The output is JSON.

Usage: ``python scripts/transform_template.py template.yaml OUT.json``
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from samtranslator.parser.parser import Parser
from samtranslator.translator.translator import Translator
from samtranslator.yaml_helper import yaml_parse

#: What SAM CLI passes the translator: the region and partition (no account, no stack name).
PSEUDO = {"AWS::Region": "us-east-1", "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}


def transform(template: dict) -> dict:
    """The CloudFormation template SAM makes of ``template`` (code locations on S3)."""
    for resource in template.get("Resources", {}).values():
        properties = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(properties.get(key), str):  # a local folder: sam package uploads it
                # the key keeps the folder's name: the embedded stack finds each code by it
                folder = properties[key].strip("/")
                properties[key] = f"s3://callstream-artifacts/{folder}.zip"
    os.environ.setdefault("AWS_DEFAULT_REGION", PSEUDO["AWS::Region"])
    return dict(
        Translator(None, Parser()).translate(sam_template=template, parameter_values=PSEUDO)
    )


def main() -> None:
    source, target = Path(sys.argv[1]), Path(sys.argv[2])
    result = transform(yaml_parse(source.read_text()))
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result, indent=1) + "\n")
    print(f"{source} → {target}: {len(result['Resources'])} resources")


if __name__ == "__main__":
    main()
