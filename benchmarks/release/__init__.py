"""The authors' released URSA pipeline folders (baaivision/URSA) as harness components: the release's
own visual tokenizers (`vae/`: FSQ320 video, IBQ1024 image) and its text tokenizer (`tokenizer/`,
with the negative prompt the sampler's unconditional branch uses). Registered through this
project's `ursa_bench.plugins` entry point (`plugin.py`); docs/release.md."""
