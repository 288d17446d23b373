from setuptools import find_packages, setup

setup(
    name="autoshrink",
    version="0.1.0",
    description="AutoShrink (AAAI 2020) in modern PyTorch: topology-aware NAS for CNN and RNN cells",
    packages=find_packages(include=["api", "api.*", "searching", "searching.*", "evaluation",
                                    "evaluation.*"]),
    python_requires=">=3.9",
    install_requires=["torch>=2.1", "torchvision", "numpy", "matplotlib", "gensim", "tqdm"],
    extras_require={"dev": ["pytest"], "ray": ["ray"],
                    # bench/oneshot_speed.py only (AutoDL's official supernets); never a
                    # runtime dependency. It pins numpy<=1.19.5, which does not build on Python
                    # 3.11: `pip install --no-deps xautodl` there (it runs on numpy 2).
                    "bench": ["xautodl"]},
)
