"""Train a DCGAN to draw 28×28 digits with graphc: the discriminator step, then the generator step.

    python examples/train_gan.py                                  # on the built-in digits
    python examples/train_gan.py --data mnist:~/data/mnist --epochs 5
    python examples/train_gan.py --eager                          # op by op, to compare

Both updates of a training iteration (the discriminator on real images and on
detached fakes, then the generator through the updated discriminator) are
traced by graphc.compile into ONE graph, the noise draw included.  After every
epoch a grid of 64 samples from fixed noise is saved as samples_epochNNN.png,
and metrics.csv, metrics.png, the networks' weights (generator.safetensors,
discriminator.safetensors) and a checkpoint of both networks and both
optimizers (to --resume from) are written into --out.
"""
import numpy as np
from PIL import Image

import graphc
import graphc.nn as nn
import graphc.optim as optim

import common
import models

IMAGE_FORMAT = common.ImageFormat(size=28, channels=1)
NOISE_SIZE = 100            # the generator's input: a vector of standard normal noise
GRID_SIDE = 8               # the sample grid is GRID_SIDE × GRID_SIDE images
GRID_PADDING = 2            # pixels between the images of the grid


def main():
    parser = common.argument_parser("train_gan", __doc__, epochs=5, batch_size=32, lr=2e-4)
    args = common.parse_args(parser)

    graphc.manual_seed(args.seed)
    data = common.load_data(args.data, IMAGE_FORMAT, args.seed)
    generator = models.Generator(NOISE_SIZE)
    discriminator = models.Discriminator()
    generator.apply(models.weights_init)
    discriminator.apply(models.weights_init)
    criterion = nn.BCELoss()
    # The DCGAN paper's settings: a learning rate of 2e-4 and a first-moment decay of 0.5.
    optimizer_g = optim.Adam(generator.parameters(), lr=args.lr, betas=(0.5, 0.999))
    optimizer_d = optim.Adam(discriminator.parameters(), lr=args.lr, betas=(0.5, 0.999))

    def train_step(real_images):
        batch_size = real_images.shape[0]
        real_labels = graphc.ones(batch_size, 1)
        fake_labels = graphc.zeros(batch_size, 1)

        # (1) Update the discriminator: maximize log(D(x)) + log(1 - D(G(z))).
        optimizer_d.zero_grad()
        output_real = discriminator(real_images)
        loss_d_real = criterion(output_real, real_labels)
        loss_d_real.backward()
        fake_images = generator(graphc.randn(batch_size, NOISE_SIZE))
        output_fake = discriminator(fake_images.detach())     # no gradient into the generator here
        loss_d_fake = criterion(output_fake, fake_labels)
        loss_d_fake.backward()
        optimizer_d.step()

        # (2) Update the generator: maximize log(D(G(z))), judged by the discriminator just updated.
        optimizer_g.zero_grad()
        loss_g = criterion(discriminator(fake_images), real_labels)
        loss_g.backward()
        optimizer_g.step()
        return loss_d_real + loss_d_fake, loss_g, output_real.mean(), output_fake.mean()

    def generate(noise):
        with graphc.no_grad():
            return generator(noise)

    if not args.eager:
        train_step = graphc.compile(train_step, backend=args.backend)
        generate = graphc.compile(generate, backend=args.backend)

    # The samples of every epoch come from the same noise, so the grids show the generator improving.
    fixed_noise = graphc.randn(GRID_SIDE * GRID_SIDE, NOISE_SIZE, generator=graphc.Generator(args.seed))
    common.check_fits_data(args, data, needs_test_set=False)
    run = common.TrainingRun(args, state={"generator": generator, "discriminator": discriminator,
                                          "optimizer_g": optimizer_g, "optimizer_d": optimizer_d},
                             plots={"loss": ["loss_d", "loss_g"], "discriminator output": ["d_real", "d_fake"]})
    first_epoch = run.resume(args.resume) if args.resume else 1
    print(common.describe("DCGAN", data, args))
    for epoch in range(first_epoch, args.epochs + 1):
        progress = run.progress(data.train, epoch)
        for real_images, _ in progress:
            loss_d, loss_g, d_real, d_fake = train_step(real_images)
            progress.record(len(real_images), loss_d=loss_d.item(), loss_g=loss_g.item(),
                            d_real=d_real.item(), d_fake=d_fake.item())
        generator.eval()            # BatchNorm with its running averages, as at test time
        save_grid(generate(fixed_noise), run.output(f"samples_epoch{epoch:03d}.png"))
        generator.train()
        run.end_epoch(epoch, progress)
        # The two networks' weights on their own too, as pytorch/examples' DCGAN saves netG and netD:
        # graphc.load("generator.safetensors") gives a state dict for models.Generator.
        graphc.save(generator.state_dict(), run.output("generator.safetensors"))
        graphc.save(discriminator.state_dict(), run.output("discriminator.safetensors"))
    run.finish()


def save_grid(images: graphc.Tensor, path) -> None:
    """Save N×1×H×W images in [-1, 1] as one grayscale PNG, GRID_SIDE images to a row."""
    pixels = np.rint((images.numpy()[:, 0] + 1) * 127.5).clip(0, 255).astype(np.uint8)
    count, height, width = pixels.shape
    rows = -(-count // GRID_SIDE)
    step_y, step_x = height + GRID_PADDING, width + GRID_PADDING
    grid = np.zeros((rows * step_y + GRID_PADDING, GRID_SIDE * step_x + GRID_PADDING), np.uint8)
    for index, image in enumerate(pixels):
        row, column = divmod(index, GRID_SIDE)
        top, left = GRID_PADDING + row * step_y, GRID_PADDING + column * step_x
        grid[top:top + height, left:left + width] = image
    Image.fromarray(grid).save(path)


if __name__ == "__main__":
    main()
