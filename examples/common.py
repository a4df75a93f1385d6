"""What the example training programs share: their options, their data, and the bookkeeping of an epoch loop.

train_cnn.py, train_resnet.py and train_gan.py each build a model, an optimizer and a
training step, and leave the rest to this module:

* ``argument_parser`` and ``parse_args``: the options every program takes (``--data``,
  ``--backend``, ``--epochs``, ``--resume``, ...), checked before any work starts;
* ``load_data``: the chosen dataset as images of the size and channels the model expects;
* ``TrainingRun``: per-epoch progress bars, ``metrics.csv``, a plot of the metrics, and
  checkpoints that a later run resumes from to exactly the same result.
"""
from __future__ import annotations

import argparse
import csv
import itertools
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
# A Figure made directly (not through pyplot) draws with Agg into files: no display needed, no global state.
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from tqdm import tqdm

import graphc
import graphc.transforms as T
from graphc.backends.registry import available_backends
from graphc.datasets import CIFAR10, DatasetError, Digits, FashionMNIST, ImageFolder, MNIST
from graphc.utils.data import DataLoader, Dataset, random_split

# graphc's backends, the fastest first: native CPU code, OpenCL kernels, numpy op by op.
BACKENDS_FASTEST_FIRST = ("llvm", "opencl", "reference")
# The datasets --data names, each read from a directory: --data mnist:~/data/mnist.
DATASETS_IN_DIRECTORIES = {"mnist": MNIST, "fashion": FashionMNIST, "cifar10": CIFAR10, "folder": ImageFolder}
DATA_FORMS = "digits, mnist:DIR, fashion:DIR, cifar10:DIR or folder:DIR"
FOLDER_TEST_FRACTION = 0.1          # of a folder:DIR without train/ and test/ sub-folders, held out for testing
CHECKPOINT_NAME = "checkpoint.safetensors"


# -- options --------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class DataSource:
    """A parsed ``--data`` value: a dataset name and, except for the built-in digits, its directory."""
    name: str
    root: Path | None = None


def data_source(text: str) -> DataSource:
    """Parse ``--data``; argparse turns the ArgumentTypeError into a usage message and exit status 2."""
    name, colon, root = text.partition(":")
    if name == "digits" and not colon:
        return DataSource("digits")
    if name not in DATASETS_IN_DIRECTORIES or not root:
        raise argparse.ArgumentTypeError(f"{text!r} is not a dataset; use {DATA_FORMS}")
    directory = Path(root).expanduser()
    if not directory.is_dir():
        raise argparse.ArgumentTypeError(f"{directory} is not a directory (from {text!r})")
    return DataSource(name, directory)


def non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text}")
    return value


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a number >= 1, got {text}")
    return value


def learning_rate(text: str) -> float:
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"expected a learning rate > 0, got {text}")
    return value


def argument_parser(program: str, description: str, *, epochs: int, batch_size: int,
                    lr: float) -> argparse.ArgumentParser:
    """The options all the programs take; a program adds its own and then calls ``parse_args``."""
    parser = argparse.ArgumentParser(prog=f"{program}.py", description=description,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.set_defaults(program=program)
    parser.add_argument("--data", type=data_source, default=DataSource("digits"),
                        help=f"the dataset: {DATA_FORMS} (default: digits, the 1,797 handwritten digits "
                             "that come with graphc). folder:DIR reads DIR/<class>/<image> files, from DIR/train "
                             f"and DIR/test where both exist, else holding out {FOLDER_TEST_FRACTION:.0%}% of DIR "
                             "for testing")
    parser.add_argument("--backend", choices=sorted(BACKENDS_FASTEST_FIRST),
                        help="the backend that runs the compiled steps (default: the fastest available)")
    parser.add_argument("--eager", action="store_true",
                        help="run op by op without graphc.compile, for comparison")
    parser.add_argument("--epochs", type=positive_int, default=epochs, help=f"default: {epochs}")
    parser.add_argument("--batch-size", type=positive_int, default=batch_size, help=f"default: {batch_size}")
    parser.add_argument("--lr", type=learning_rate, default=lr, help=f"learning rate (default: {lr})")
    parser.add_argument("--seed", type=non_negative_int, default=0,
                        help="seeds the weights, the data order and every random draw (default: 0)")
    parser.add_argument("--out", type=Path, help=f"where outputs go (default: runs/{program})")
    parser.add_argument("--resume", type=Path, metavar="CKPT",
                        help="continue from a checkpoint this program saved, as if never interrupted")
    parser.add_argument("--max-steps", type=positive_int, metavar="N",
                        help="end each epoch after N training steps, and test on at most N batches "
                             "(for quick runs)")
    return parser


def parse_args(parser: argparse.ArgumentParser) -> argparse.Namespace:
    """Parse and check the command line; a problem is reported before any work starts (exit status 2)."""
    args = parser.parse_args()
    available = available_backends()
    if args.backend is None:
        args.backend = next(name for name in BACKENDS_FASTEST_FIRST if name in available)
    elif args.backend not in available:
        parser.error(f"the {args.backend} backend is not available here (available: {', '.join(available)})")
    if args.resume is not None and not args.resume.is_file():
        parser.error(f"--resume: {args.resume} is not a file")
    if args.out is None:
        args.out = Path("runs") / args.program
    existing = next((folder for folder in [args.out, *args.out.parents] if folder.exists()), None)
    if existing is not None and not existing.is_dir():
        parser.error(f"--out {args.out}: {existing} is a file, not a folder for the outputs")
    return args


def check_fits_data(args: argparse.Namespace, data: "ImageData", needs_test_set: bool = True) -> None:
    """End the program, before any work, if --batch-size or the data leave nothing to train or test on."""
    if args.batch_size > len(data.train):
        raise fail(f"--batch-size {args.batch_size} is larger than the training set ({len(data.train)} images of "
                   f"{args.data.name}); every step takes a full batch, so none would run. Use a smaller --batch-size")
    if needs_test_set and len(data.test) == 0:
        raise fail(f"the test set of {args.data.name} is empty, so accuracy cannot be measured; "
                   + (f"folder:DIR holds {FOLDER_TEST_FRACTION:.0%} of its images out for testing, so give it "
                      "more images, or train/ and test/ sub-folders" if args.data.name == "folder"
                      else "its test files hold no images"))


def fail(message: str) -> SystemExit:
    """The exception that ends a program with ``message`` and exit status 1, without a traceback."""
    return SystemExit(f"{Path(sys.argv[0]).name}: error: {message}")


# -- data -----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImageFormat:
    """The images a model takes: ``size``×``size`` pixels with ``channels`` channels (1 or 3)."""
    size: int
    channels: int


@dataclass
class ImageData:
    """A training and a test set of (image, label) samples, and the names of the labels' classes."""
    train: Dataset
    test: Dataset
    classes: list[str]


class ConvertChannels:
    """Images to ``channels`` channels: grayscale to RGB repeats the gray, RGB to grayscale takes the luma.

    Like graphc's other transforms, it takes a Pillow image or, in its ``batch``
    form, a uint8 N×H×W×C array, so the in-memory datasets convert a whole
    batch at once.
    """

    # ITU-R 601-2 luma, the weights Pillow's convert("L") uses.
    LUMA = np.array([0.299, 0.587, 0.114], np.float32)

    def __init__(self, channels: int):
        self.channels = channels

    def __call__(self, image):
        return image.convert("L" if self.channels == 1 else "RGB")

    def batch(self, images: np.ndarray) -> np.ndarray:
        if images.shape[3] == self.channels:
            return images
        if self.channels == 3:
            return np.repeat(images, 3, axis=3)
        return np.rint(images @ self.LUMA).astype(np.uint8)[..., None]


def load_data(source: DataSource, image_format: ImageFormat, seed: int) -> ImageData:
    """The dataset ``source`` names, as float32 C×H×W images in [-1, 1] of ``image_format``.

    A dataset whose files are missing or broken ends the program with the
    dataset's explanation (exit status 1).
    """
    # [-1, 1] is what the GAN's Tanh generator produces, and it centres the classifiers' inputs.
    to_tensor = [T.ToTensor(), T.Normalize([0.5], [0.5])]
    try:
        if source.name == "digits":
            transform = T.Compose(to_tensor)
            return ImageData(Digits(train=True, size=image_format.size, channels=image_format.channels,
                                    transform=transform),
                             Digits(train=False, size=image_format.size, channels=image_format.channels,
                                    transform=transform),
                             Digits.classes)
        transform = T.Compose([T.Resize((image_format.size, image_format.size)),
                               ConvertChannels(image_format.channels), *to_tensor])
        if source.name == "folder":
            return _load_image_folder(source.root, transform, seed)
        dataset = DATASETS_IN_DIRECTORIES[source.name]
        return ImageData(dataset(source.root, train=True, transform=transform),
                         dataset(source.root, train=False, transform=transform), dataset.classes)
    except DatasetError as error:
        raise fail(str(error)) from None


def _load_image_folder(root: Path, transform, seed: int) -> ImageData:
    """root/train and root/test when both exist, else root split at random (the same split for a seed)."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        train = ImageFolder(root / "train", transform=transform)
        return ImageData(train, ImageFolder(root / "test", transform=transform), train.classes)
    everything = ImageFolder(root, transform=transform)
    train, test = random_split(everything, [1 - FOLDER_TEST_FRACTION, FOLDER_TEST_FRACTION], generator=seed)
    return ImageData(train, test, everything.classes)


def describe(model_name: str, data: ImageData, args: argparse.Namespace) -> str:
    """A line saying what is trained on what, and how it runs."""
    how = "eager" if args.eager else f"compiled for the {args.backend} backend"
    return f"{model_name} on {args.data.name} ({len(data.train)} training images), {how}"


def epoch_loader(dataset, batch_size: int, seed: int, epoch: int) -> DataLoader:
    """The shuffled training batches of ``epoch``, in an order that depends only on (seed, epoch).

    So a run resumed at an epoch boundary sees exactly the batches an
    uninterrupted run sees.  The last, incomplete batch is dropped: every step
    then has one input shape, which graphc.compile traces once.
    """
    epoch_seed = int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])
    return DataLoader(dataset, batch_size=batch_size, shuffle=True, drop_last=True, generator=epoch_seed)


def evaluate(predict, dataset, args: argparse.Namespace) -> float:
    """The fraction of ``dataset`` whose label ``predict(images)`` gets right (within --max-steps batches)."""
    loader = DataLoader(dataset, batch_size=args.batch_size)
    correct = total = 0
    for images, labels in itertools.islice(loader, args.max_steps):
        correct += int((predict(images) == labels).sum().item())
        total += len(labels)
    return correct / total


# -- the epoch loop -------------------------------------------------------------------------------------------
class EpochProgress:
    """One epoch's training batches under a tqdm progress bar that shows the losses and images/s.

    Iterate over it for the batches, and ``record`` each step's losses; the
    epoch's mean losses and its throughput are then ready for ``TrainingRun.end_epoch``.
    """

    def __init__(self, loader: DataLoader, epoch: int, epochs: int, max_steps: int | None):
        self.steps = min(len(loader), max_steps or len(loader))
        self.loader = loader
        self.description = f"epoch {epoch}/{epochs}"
        self.loss_sums: dict[str, float] = {}
        self.steps_done = 0
        self.images = 0
        self.started = time.perf_counter()
        self.training_seconds = 0.0
        self.bar = None

    def __iter__(self):
        # disable=None: no bar where stderr is not a terminal (a log file would get a redraw per step);
        # the summary line each epoch prints is the record there.
        self.bar = tqdm(itertools.islice(self.loader, self.steps), total=self.steps, desc=self.description,
                        unit="step", leave=False, dynamic_ncols=True, disable=None)
        training_started = time.perf_counter()
        yield from self.bar
        self.training_seconds = time.perf_counter() - training_started
        self.bar.close()

    def record(self, batch_size: int, **losses: float) -> None:
        """Count a finished step of ``batch_size`` images with its losses (plain floats)."""
        self.steps_done += 1
        self.images += batch_size
        for name, value in losses.items():
            self.loss_sums[name] = self.loss_sums.get(name, 0.0) + value
        throughput = self.images / (time.perf_counter() - self.started)
        self.bar.set_postfix({**{name: f"{value:.4f}" for name, value in losses.items()},
                              "images/s": f"{throughput:.0f}"})

    def mean_losses(self) -> dict[str, float]:
        return {name: total / self.steps_done for name, total in self.loss_sums.items()}

    def images_per_second(self) -> float:
        """Training throughput, including the first epoch's compilation."""
        return self.images / self.training_seconds if self.training_seconds else 0.0


class TrainingRun:
    """A training program's outputs in ``--out``: metrics.csv, metrics.png and the checkpoint.

    ``state`` names everything a checkpoint holds (modules and optimizers, each
    with ``state_dict``/``load_state_dict``); ``plots`` names the panels of
    metrics.png and the metrics drawn in each.
    """

    def __init__(self, args: argparse.Namespace, state: dict, plots: dict[str, list[str]]):
        self.args = args
        self.state = state
        self.plots = plots
        self.metrics: list[dict] = []
        self.out = args.out
        self.written: list[str] = []         # the names of the files this run wrote into out, in order
        try:
            self.out.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise fail(f"cannot make the output folder {self.out}: {error.strerror or error}") from None

    @property
    def checkpoint_path(self) -> Path:
        return self.output(CHECKPOINT_NAME)

    def output(self, name: str) -> Path:
        """The path of the output file ``name`` in --out, noted for the list ``finish`` prints."""
        if name not in self.written:
            self.written.append(name)
        return self.out / name

    def finish(self) -> None:
        """Say where the outputs are."""
        print(f"wrote {', '.join(self.written)} to {self.out}", flush=True)

    def progress(self, dataset, epoch: int) -> EpochProgress:
        """The training batches of ``epoch`` with their progress bar."""
        loader = epoch_loader(dataset, self.args.batch_size, self.args.seed, epoch)
        return EpochProgress(loader, epoch, self.args.epochs, self.args.max_steps)

    def end_epoch(self, epoch: int, progress: EpochProgress, **results: float) -> None:
        """Print the epoch's summary line, add it to metrics.csv and metrics.png, and save the checkpoint."""
        row = {"epoch": epoch, **progress.mean_losses(), **results,
               "images_per_second": progress.images_per_second(),
               "seconds": time.perf_counter() - progress.started}
        self.metrics.append(row)
        print(f"epoch {epoch}/{self.args.epochs}  "
              + "  ".join(f"{name} {value:.4g}" for name, value in row.items() if name != "epoch"), flush=True)
        write_metrics_csv(self.metrics, self.output("metrics.csv"))
        plot_metrics(self.metrics, self.plots, self.output("metrics.png"))
        self.save_checkpoint(epoch)

    def save_checkpoint(self, epoch: int) -> None:
        """Everything needed to continue after ``epoch`` exactly as if the run had not stopped."""
        graphc.save({**{name: obj.state_dict() for name, obj in self.state.items()},
                     "epoch": epoch,
                     "seed": self.args.seed,
                     # The default generator drives dropout, noise and every other draw inside the steps.
                     "rng_state": graphc.default_generator.get_state(),
                     "metrics": self.metrics},
                    self.checkpoint_path)

    def resume(self, path: Path) -> int:
        """Load the checkpoint at ``path`` into ``state``; returns the epoch to continue with."""
        try:
            checkpoint = graphc.load(path)
        except graphc.CheckpointError as error:
            raise fail(str(error)) from None
        missing = [name for name in [*self.state, "epoch", "seed", "rng_state", "metrics"]
                   if not isinstance(checkpoint, dict) or name not in checkpoint]
        if missing:
            raise fail(f"{path} is not a checkpoint of {self.args.program}.py (it lacks {', '.join(missing)})")
        if checkpoint["seed"] != self.args.seed:
            # The data order of later epochs depends on the seed; another one would not continue the same run.
            raise fail(f"{path} was trained with --seed {checkpoint['seed']}; resume it with that seed")
        for name, obj in self.state.items():
            mismatch = state_mismatch(checkpoint[name], obj.state_dict()) if isinstance(obj, graphc.nn.Module) \
                else None
            if mismatch:
                raise fail(f"{path} does not fit this {self.args.program}.py run: its {name} {mismatch}")
            try:
                obj.load_state_dict(checkpoint[name])
            except (KeyError, TypeError, RuntimeError, ValueError, graphc.GraphcError) as error:
                raise fail(f"{path} does not fit this {self.args.program}.py run ({name}: {error})") from None
        graphc.default_generator.set_state(checkpoint["rng_state"].numpy())
        self.metrics = checkpoint["metrics"]
        return checkpoint["epoch"] + 1


def state_mismatch(saved, expected: dict) -> str | None:
    """How a saved module state dict differs from ``expected`` (names and shapes), in counts and the first
    few names; None if it fits.  (Module.load_state_dict's own message lists every key, dozens of lines.)"""
    if not isinstance(saved, dict):
        return f"is a {type(saved).__name__}, not a state dict"
    missing = [key for key in expected if key not in saved]
    unexpected = [key for key in saved if key not in expected]
    resized = [f"{key} {list(saved[key].shape)} instead of {list(expected[key].shape)}" for key in expected
               if key in saved and tuple(getattr(saved[key], "shape", ())) != tuple(expected[key].shape)]
    problems = []
    if missing:
        problems.append(f"lacks {len(missing)} of the model's {tensors(len(expected))} ({first_few(missing)})")
    if unexpected:
        problems.append(f"has {tensors(len(unexpected))} the model lacks ({first_few(unexpected)})")
    if resized:
        problems.append(f"has {tensors(len(resized))} of other shapes ({first_few(resized)})")
    return ", ".join(problems) or None


def tensors(count: int) -> str:
    return f"{count} tensor" if count == 1 else f"{count} tensors"


def first_few(names: list[str], count: int = 3) -> str:
    return ", ".join(names[:count]) + (", ..." if len(names) > count else "")


def train_classifier(args: argparse.Namespace, name: str, data: ImageData, model, optimizer, loss_fn) -> None:
    """Train ``model`` on ``data`` with ``optimizer``, testing it after every epoch.

    The training step (zero_grad, forward, loss, backward, update) and the
    test-time forward are each compiled by graphc.compile into one graph,
    traced on their first call; the forward is traced in eval mode, so dropout
    is off there.
    """
    def train_step(images, labels):
        optimizer.zero_grad()
        loss = loss_fn(model(images), labels)
        loss.backward()
        optimizer.step()
        return loss

    def predict(images):
        with graphc.no_grad():
            return model(images).argmax(1)

    if not args.eager:
        train_step = graphc.compile(train_step, backend=args.backend)
        predict = graphc.compile(predict, backend=args.backend)

    check_fits_data(args, data)
    run = TrainingRun(args, state={"model": model, "optimizer": optimizer},
                      plots={"loss": ["train_loss"], "accuracy": ["test_accuracy"]})
    first_epoch = run.resume(args.resume) if args.resume else 1
    print(describe(name, data, args))
    for epoch in range(first_epoch, args.epochs + 1):
        model.train()
        progress = run.progress(data.train, epoch)
        for images, labels in progress:
            loss = train_step(images, labels)
            progress.record(len(labels), train_loss=loss.item())
        model.eval()
        run.end_epoch(epoch, progress, test_accuracy=evaluate(predict, data.test, args))
    run.finish()


def write_metrics_csv(metrics: list[dict], path: Path) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.DictWriter(file, fieldnames=list(metrics[0]))
        writer.writeheader()
        writer.writerows(metrics)


def plot_metrics(metrics: list[dict], plots: dict[str, list[str]], path: Path) -> None:
    """One panel per entry of ``plots``, each drawing its metrics against the epoch."""
    figure = Figure(figsize=(5 * len(plots), 3.5), layout="tight")
    axes = figure.subplots(1, len(plots), squeeze=False)[0]
    epochs = [row["epoch"] for row in metrics]
    for axis, (title, names) in zip(axes, plots.items()):
        for name in names:
            axis.plot(epochs, [row[name] for row in metrics], marker="o", label=name)
        axis.set_title(title)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(MaxNLocator(integer=True))
        axis.grid(True, alpha=0.3)
        axis.legend()
    figure.savefig(path, dpi=100)
