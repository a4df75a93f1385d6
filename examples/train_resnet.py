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

    def train_step(images, labels):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    def predict(images):
        with graphc.no_grad():
            return model(images).argmax(1)

    if not args.eager:
        train_step = graphc.compile(train_step, backend=args.backend)
        predict = graphc.compile(predict, backend=args.backend)

    run = common.TrainingRun(args, state={"model": model, "optimizer": optimizer},
                             plots={"loss": ["train_loss"], "accuracy": ["test_accuracy"]})
    first_epoch = run.resume(args.resume) if args.resume else 1
    print(common.describe("ResNet", data, args))
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
