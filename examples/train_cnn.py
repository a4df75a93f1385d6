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

    def train_step(images, labels):
        optimizer.zero_grad()
        loss = recipe.loss(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    def predict(images):
        with graphc.no_grad():
            return model(images).argmax(1)

    if not args.eager:
        # Traced on the first call; the test-time forward is traced in eval mode, so dropout is off there.
        train_step = graphc.compile(train_step, backend=args.backend)
        predict = graphc.compile(predict, backend=args.backend)

    run = common.TrainingRun(args, state={"model": model, "optimizer": optimizer},
                             plots={"loss": ["train_loss"], "accuracy": ["test_accuracy"]})
    first_epoch = run.resume(args.resume) if args.resume else 1
    print(common.describe(args.model, data, args))
    for epoch in range(first_epoch, args.epochs + 1):
        model.train()
        progress = run.progress(data.train, epoch)
        for images, labels in progress:
            loss = train_step(images, labels)
            progress.record(len(labels), train_loss=loss.item())
        model.eval()
        run.end_epoch(epoch, progress, test_accuracy=common.evaluate(predict, data.test, args))


if __name__ == "__main__":
    main()
