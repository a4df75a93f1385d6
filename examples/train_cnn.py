"""Train a small convolutional classifier with graphc: LeNet (the default), CNN or MNISTNet.

    python examples/train_cnn.py                                  # LeNet on the built-in digits
    python examples/train_cnn.py --model mnistnet --data mnist:~/data/mnist
    python examples/train_cnn.py --eager                          # op by op, to compare

Each training step (zero_grad, forward, loss, backward, the SGD update) is traced
once by graphc.compile into one graph, which then runs as one program per batch.
After every epoch the model is tested, and metrics.csv, metrics.png and a
checkpoint to --resume from are written into --out.
"""
from dataclasses import dataclass
from typing import Callable

import graphc
import graphc.nn.functional as F
import graphc.optim as optim

import common
import models


@dataclass(frozen=True)
class Recipe:
    """How to build one of the models and train it."""
    build: Callable[[int], graphc.nn.Module]     # the number of classes -> the model
    image_format: common.ImageFormat
    loss: Callable                               # (model output, labels) -> the loss


RECIPES = {
    "lenet": Recipe(lambda classes: models.LeNet(num_classes=classes), common.ImageFormat(32, 3), F.cross_entropy),
    "cnn": Recipe(lambda classes: models.CNN(num_classes=classes), common.ImageFormat(32, 3), F.cross_entropy),
    # MNISTNet has ten outputs, and they are log-probabilities, hence the negative log-likelihood.
    "mnistnet": Recipe(lambda classes: models.MNISTNet(), common.ImageFormat(28, 1), F.nll_loss),
}


def main():
    parser = common.argument_parser("train_cnn", __doc__, epochs=10, batch_size=32, lr=0.01)
    parser.add_argument("--model", choices=RECIPES, default="lenet", help="default: lenet")
    args = common.parse_args(parser)
    recipe = RECIPES[args.model]

    graphc.manual_seed(args.seed)
    data = common.load_data(args.data, recipe.image_format, args.seed)
    model = recipe.build(len(data.classes))
    optimizer = optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)

    common.train_classifier(args, args.model, data, model, optimizer, recipe.loss)


if __name__ == "__main__":
    main()
