"""Train a small ResNet (a ResNet stem and six 64-channel residual blocks) with Adam, using graphc.

    python examples/train_resnet.py                               # on the built-in digits
    python examples/train_resnet.py --data cifar10:~/data/cifar10 --epochs 20
    python examples/train_resnet.py --eager                       # op by op, to compare

graphc.compile traces each training step (zero_grad, forward with batch
statistics, loss, backward, the Adam update, and the BatchNorm running
averages) into one graph.  The test-time forward is compiled separately, in
eval mode, where BatchNorm uses the running averages.  After every epoch
metrics.csv, metrics.png and a checkpoint to --resume from are written into --out.
"""
import graphc
import graphc.nn.functional as F
import graphc.optim as optim

import common
import models

IMAGE_FORMAT = common.ImageFormat(size=32, channels=3)


def main():
    parser = common.argument_parser("train_resnet", __doc__, epochs=3, batch_size=32, lr=1e-3)
    args = common.parse_args(parser)

    graphc.manual_seed(args.seed)
    data = common.load_data(args.data, IMAGE_FORMAT, args.seed)
    model = models.ResNet(num_classes=len(data.classes))
    optimizer = optim.Adam(model.parameters(), lr=args.lr)

    common.train_classifier(args, "ResNet", data, model, optimizer, F.cross_entropy)


if __name__ == "__main__":
    main()
