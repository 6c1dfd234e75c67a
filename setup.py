"""Install the DCGAN image-completion scripts: `pip install .` (or `pip install -e .`)."""
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent
requirements = [line.strip() for line in (HERE / "requirements.txt").read_text().splitlines()
                if line.strip() and not line.startswith("#")]

setup(
    name="dcgan-completion-tf2",
    version="1.0.0",
    description="Semantic image completion with a DCGAN: a TensorFlow 2 port of Amos (2016) after Yeh et al.",
    long_description=(HERE / "README.md").read_text() if (HERE / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    license="MIT",
    python_requires=">=3.10,<3.14",  # the Pythons TensorFlow 2.21 supports (3.10 to 3.13)
    # The original's files and the thin scripts at the top; everything else in one package
    # (tests/test_packaging.py checks that nothing else is installed as a top-level name).
    py_modules=["train_dcgan", "complete", "align_faces", "simple_distributions", "model", "ops", "utils",
                "serve", "export_savedmodel", "convert_checkpoint", "train_encoder"],
    packages=find_packages(include=["dcgan_completion", "dcgan_completion.*"]),
    package_data={"dcgan_completion.serving": ["static/*"]},  # the web page
    # The shipped face models (checkpoints/face*), where storage.shipped_model_dir() looks in an installed
    # wheel (each encoder in face*/encoder: a folder of its own there; TensorBoard logs stay behind).
    data_files=[(f"share/dcgan-completion-tf2/{folder.relative_to(HERE / 'checkpoints')}",
                 sorted(str(p.relative_to(HERE)) for p in folder.iterdir() if p.is_file()))
                for model in sorted((HERE / "checkpoints").glob("face*")) for folder in (model, model / "encoder")
                if folder.is_dir()],
    install_requires=requirements,
    extras_require={"test": ["pytest>=7", "pytest-xdist", "httpx", "selenium", "scikit-image", "imageio>=2.28"], "gpu": ["tensorflow[and-cuda]>=2.16"]},
    entry_points={"console_scripts": [
        "dcgan-train=train_dcgan:main",
        "dcgan-complete=complete:main",
        "dcgan-align-faces=align_faces:main",
        "dcgan-simple-distributions=simple_distributions:main",
        "dcgan-convert-checkpoint=convert_checkpoint:main",
        "dcgan-train-encoder=train_encoder:main",
        "dcgan-export=export_savedmodel:main",
        "dcgan-serve=serve:main",
    ]},
)
