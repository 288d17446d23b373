"""NAO's published CIFAR-10 cells in the zoo: NAONet-A, NAONet-B and NAONet-WS.

Each is the 40-integer ``fixed_arc`` of an official training script: ``naonet-a`` from
NAO_pytorch's ``train_NAONet_A_36_cifar10.sh`` (NAO's 11-op space, so the ``nao`` space and
NAO's own network), ``naonet-b`` from ``train_NAONet_B_36_cifar10.sh`` and ``naonet-ws`` from the
TF release's ``NAO-WS/cnn/train_final.sh`` (both ``enas-micro``: DARTS's ``NetworkCIFAR``).
Figures: ``params_M`` / ``test_error`` (CIFAR-10, %) are the NAO paper's Table 1 where it has a
row, ``readme_*`` the official READMEs'; ``note`` says how our counts compare.

See docs/zoo.md.
Fidelity notes: docs/fidelity/nao.md.
"""
from api.spaces import zoo
from api.spaces.arch_io import Arch
from api.spaces.enas_micro.arch import parse_arch

NAONET_A = "0 7 1 15 2 8 1 7 0 6 1 7 0 8 4 7 1 5 0 7 0 7 1 13 0 6 0 14 0 9 1 10 0 14 2 6 1 11 0 7"
NAONET_B = "0 1 0 2 0 1 2 2 1 3 0 2 4 0 1 3 2 1 0 3 1 1 1 0 2 1 2 4 1 0 2 3 3 1 2 2 0 2 0 2"
NAONET_WS = "0 1 0 4 2 2 1 3 1 0 2 0 2 3 1 3 1 2 0 4 1 1 0 3 2 3 2 3 1 0 0 1 0 4 2 4 2 3 2 3"

_NAO_T1 = "NAO (Luo et al., NeurIPS 2018), Table 1"

zoo.register(
    "naonet-a", lambda: Arch("nao", parse_arch(NAONET_A, 16, "NAO micro architecture")),
    dataset="cifar10", params_M=128.0, test_error=2.11, C=128, N=6,
    params_M_C36=10.6, test_error_C36=3.18,
    readme_test_error_C36=2.48, readme_test_error_C128=1.93,
    note="C=128 with cutout (2.11) and C=36 without (3.18) in the paper; the NAO_pytorch "
         "README's 2.48 / 1.93 are with cutout. Ours: NAO_pytorch's network, 11.47M at C=36 "
         "and 144.58M at C=128 (N=6, auxiliary head excluded); the paper counted the "
         "TensorFlow release's NASNet-style network (its cells always pass c_{k-1} through "
         "ReLU-conv1x1-BN), hence the difference",
    source=f"{_NAO_T1}; cell from renqianluo/NAO_pytorch NAO_V1/train_NAONet_A_36_cifar10.sh")
zoo.register(
    "naonet-b", lambda: Arch("enas-micro", parse_arch(NAONET_B)),
    dataset="cifar10", test_error=2.93, C=36, N=6,
    note="no paper row: the PyTorch release's own NAO-WS cell; 2.93 (cutout) is the "
         "NAO_pytorch README's. Ours: 2.92M (DARTS NetworkCIFAR, C=36, 20 cells; NAO_pytorch's "
         "network has the same count)",
    source="renqianluo/NAO_pytorch NAO_V1/README.md and train_NAONet_B_36_cifar10.sh")
zoo.register(
    "naonet-ws", lambda: Arch("enas-micro", parse_arch(NAONET_WS)),
    dataset="cifar10", params_M=2.5, test_error=3.53, C=36, N=5, layers=17,
    readme_test_error=3.50, readme_params_M=2.5,
    note="no cutout. Ours: 2.30M at the paper's 17 cells (layers=17), 2.71M at the default 20 "
         "(DARTS NetworkCIFAR, auxiliary head excluded); the paper counted the TensorFlow "
         "ENAS-style network",
    source=f"{_NAO_T1} (NAONet-WS); cell from renqianluo/NAO NAO-WS/cnn/train_final.sh, "
           "README: 2.5M, 3.50")
