"""What graphc covers of ``torch.nn``, ``torch.nn.functional``, ``torch.optim`` and ``torch.utils.data``.

As test_api_coverage.py for functions and Tensor methods: the lists are the names graphc provides
(each also PyTorch's), a name that disappears fails, and the session summary shows the coverage.
Add a name here when graphc gains it.
"""
import graphc
import graphc.nn.functional
import graphc.nn.utils
import graphc.optim.lr_scheduler
import graphc.utils.data
from optest import require_torch

torch = require_torch()

NAMESPACES = {
    "nn": ("nn", """
        AdaptiveAvgPool2d AdaptiveMaxPool2d AvgPool1d AvgPool2d BCELoss BCEWithLogitsLoss BatchNorm1d BatchNorm2d
        Conv1d Conv2d ConvTranspose2d CrossEntropyLoss Dropout Dropout2d ELU Embedding Flatten GELU GLU GRU GRUCell
        GroupNorm Hardswish Hardtanh HuberLoss Identity InstanceNorm1d InstanceNorm2d KLDivLoss L1Loss LSTM LSTMCell
        LayerNorm LeakyReLU Linear LogSigmoid LogSoftmax MSELoss MaxPool1d MaxPool2d Mish Module ModuleDict ModuleList NLLLoss
        PReLU Parameter ParameterDict ParameterList RNN RNNCell ReLU ReLU6 Sequential SiLU Sigmoid SmoothL1Loss Softmax
        Softplus Tanh Unflatten Upsample UpsamplingBilinear2d UpsamplingNearest2d"""),
    "nn.functional": ("nn.functional", """
        adaptive_avg_pool2d adaptive_max_pool2d avg_pool1d avg_pool2d batch_norm binary_cross_entropy
        binary_cross_entropy_with_logits conv1d conv2d conv_transpose2d cosine_similarity cross_entropy dropout dropout2d elu
        embedding gelu glu group_norm hardswish hardtanh huber_loss instance_norm interpolate kl_div l1_loss layer_norm
        leaky_relu linear log_softmax logsigmoid max_pool1d max_pool2d mish mse_loss nll_loss normalize one_hot pad prelu
        relu relu6 sigmoid silu
        smooth_l1_loss softmax softplus tanh upsample"""),
    "nn.utils": ("nn.utils", "clip_grad_norm_ clip_grad_value_ parameters_to_vector vector_to_parameters"),
    "optim": ("optim", "Adagrad Adam AdamW Optimizer RMSprop SGD"),
    "optim.lr_scheduler": ("optim.lr_scheduler", """
        CosineAnnealingLR ExponentialLR LRScheduler LambdaLR MultiStepLR OneCycleLR ReduceLROnPlateau StepLR"""),
    "utils.data": ("utils.data", """
        BatchSampler ConcatDataset DataLoader Dataset IterableDataset RandomSampler Sampler SequentialSampler
        Subset SubsetRandomSampler TensorDataset WeightedRandomSampler default_collate get_worker_info
        random_split"""),
}


def resolve(root, dotted: str):
    for part in dotted.split("."):
        root = getattr(root, part)
    return root


def test_namespaces(figures):
    for name, (path, names) in NAMESPACES.items():
        names = names.split()
        theirs, ours = resolve(torch, path), resolve(graphc, path)
        assert [n for n in names if not hasattr(theirs, n)] == [], name
        assert [n for n in names if not hasattr(ours, n)] == [], name
        public = [n for n in dir(theirs) if not n.startswith("_") and callable(getattr(theirs, n))]
        figures.append(f"torch.{name}: graphc has {len(names)} of PyTorch's {len(public)} public callables")
