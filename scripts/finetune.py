"""Rule finetune: one LoRA adapter per base model, trained with TRL's SFTTrainer (lmsweep.train), resumably.

The step is lmsweep.steps.finetune; run it by hand with `python scripts/finetune.py --help`.
"""

from lmsweep.runtime.job import main

main("finetune", globals().get("snakemake"))
