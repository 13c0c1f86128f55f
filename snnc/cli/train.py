"""`snnc train` and `snnc eval`: a network of a .snn file on a dataset of the dataset table."""
from __future__ import annotations

import json

from ..train.recipe import CHOICES, TrainOptions
from .common import Command, count, existing_file


def _options(args) -> TrainOptions:
    given = {k: getattr(args, k) for k in TrainOptions.__dataclass_fields__ if hasattr(args, k)}
    return TrainOptions(**{k: v for k, v in given.items() if v is not None})


def _experiment(args):
    import snnc

    lib = snnc.load(args.model)  # checks the file before torch is imported: a mistake in it is reported at once
    from ..train.experiment import from_library

    return from_library(lib, args.network)


def run_train(args) -> int:
    if args.dry_run:
        return _dry_run(args)
    exp = _experiment(args)
    from ..train.runner import train

    result = train(exp, _options(args))
    if result:
        print(json.dumps({k: v for k, v in result.items() if isinstance(v, (int, float, str))}))
    return 0


def _dry_run(args) -> int:
    exp = _experiment(args)
    from ..train.runner import dry_run

    r = dry_run(exp, _options(args))
    s = r["settings"]
    compiled = f", {r['compile_seconds']:.1f} s compiling kernels" if r["compile_seconds"] >= 0.05 else ""
    print(f"{args.model}: {exp.name} ({r['parameters']:,} parameters) trained one batch of {s['batch_size']} "
          f"random {s['dataset']}-shaped images, T={s['T']}, backend {r['backend']} on {r['device']}: "
          f"loss {r['loss']:.4f}, forward and backward {r['seconds']:.2f} s{compiled}. No files written.")
    return 0


def run_eval(args) -> int:
    exp = _experiment(args)
    from ..train.runner import evaluate

    result = evaluate(exp, args.checkpoint, _options(args))
    if args.json:
        print(json.dumps(result))
        return 0
    print(f"{exp.name}, {args.checkpoint} (epoch {result['epoch']}), {result['samples']:,} test images")
    print(f"  test accuracy  {100 * result['test_acc']:.2f} %")
    print(f"  test loss      {result['test_loss']:.4f}")
    return 0


def _recipe(key: str) -> str:
    """Where a run setting's default comes from (the value is filled in when help is shown: `common.Formatter`)."""
    return f"default: the model's train block, else {{recipe.{key}}}"


def _shared_arguments(p, training: bool) -> None:
    p.add_argument("model", metavar="MODEL.snn", type=existing_file, help="the .snn file")
    p.add_argument("--network", help="which network of the file (default: the first)")
    p.add_argument("-T", type=count, dest="T", help="time steps per sample (default: the network's T)")
    p.add_argument("-b", "--batch-size", type=count, dest="batch_size", metavar="N", help=f"samples per batch ({_recipe('batch_size')})")
    data = p.add_argument_group("data")
    data.add_argument("--data-dir", dest="data_dir", metavar="DIR",
                      help="the dataset's folder, in its publisher's (or torchvision's, tonic's, SpikingJelly's) "
                           "layout (default: $SNNC_DATA_DIR)")
    data.add_argument("--data-workers", type=int, dest="data_workers", metavar="N",
                      help="loader processes that read, bin and augment batches ahead (default: none where batches "
                           "come from memory or cached frames, else one per four cores, at least one)")
    if training:
        data.add_argument("--dataset", metavar="NAME",
                          help="what to train on: a dataset of the table (mnist, nmnist, dvs_gesture, shd, cifar10, "
                               "...; default: the model's train block, else mnist)")
        data.add_argument("--download", action="store_true", default=None,
                          help="download the dataset into --data-dir if it is not there")
        data.add_argument("--val-split", type=float, dest="val_split", metavar="F",
                          help="fraction of the training images held out (the same ones in every run) to choose "
                               f"best.pt; the test set is reported, never used to choose ({_recipe('val_split')})")
        data.add_argument("--subset", type=count, metavar="K",
                          help="train on the first K training images only, for 1 epoch unless --epochs is given")
    data.add_argument("--test-subset", type=count, dest="test_subset", metavar="K",
                      help="evaluate on the first K test images only (default: all 10,000)")
    where = p.add_argument_group("where it runs")
    from ..runtime.backends import names

    where.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cuda when there is one, else cpu)")
    where.add_argument("--backend", choices=names(),
                       help="neuron kernels (default: the fastest available on the device: cupy on GPUs, cpp on CPUs)")
    where.add_argument("--workers", type=count, metavar="N", help="CPU threads (default: every core)")
    where.add_argument("--no-fuse-input", dest="fuse_input", action="store_false", default=None,
                       help="encode to a spike tensor and run the first layer separately (slower; for comparison)")


def _train_arguments(p) -> None:
    _shared_arguments(p, training=True)
    r = p.add_argument_group("recipe (each default comes from the model's train { ... } block, else snnc's)")
    r.add_argument("--epochs", type=count, metavar="N",
                   help=f"passes over the training images ({_recipe('epochs')}; with --subset, 1)")
    r.add_argument("--lr", type=float, help=f"learning rate ({_recipe('lr')})")
    r.add_argument("--opt", choices=CHOICES["opt"], help=f"optimizer ({_recipe('opt')})")
    r.add_argument("--momentum", type=float, metavar="M", help=f"for sgd ({_recipe('momentum')})")
    r.add_argument("--weight-decay", type=float, dest="weight_decay", metavar="W",
                   help=f"L2 penalty ({_recipe('weight_decay')})")
    r.add_argument("--lr-schedule", choices=CHOICES["lr_schedule"], dest="lr_schedule",
                   help=f"cosine: anneal the learning rate to 0 over the epochs ({_recipe('lr_schedule')})")
    r.add_argument("--loss", choices=CHOICES["loss"],
                   help=f"mse against one-hot rates, or cross-entropy of the readout ({_recipe('loss')})")
    r.add_argument("--amp", action="store_true", default=None, help="mixed precision (default: the model's train block, else off)")
    r.add_argument("--memory", choices=CHOICES["memory"],
                   help=f"what backward keeps: fast (everything), balanced (spikes as bits, cheap layers recomputed), "
                        f"min (every stateless layer recomputed); gradients are the same ({_recipe('memory')})")
    r.add_argument("--gradient", choices=CHOICES["gradient"],
                   help=f"bptt, or online learning whose memory does not grow with T: sltt ({_recipe('gradient')})")
    r.add_argument("--seed", type=int, help=f"weights, sample order and Poisson spikes ({_recipe('seed')})")
    run = p.add_argument_group("the run")
    run.add_argument("--out-dir", dest="out_dir", metavar="DIR",
                     help="where last.pt, best.pt, metrics.csv, plots and TensorBoard logs go (default: runs/NETWORK)")
    run.add_argument("--resume", metavar="CHECKPOINT", type=existing_file,
                     help="continue a run from its last.pt, exactly where it stopped (settings from the checkpoint)")
    run.add_argument("--overwrite", action="store_true", default=None,
                     help="start afresh in an --out-dir that already holds a run")
    run.add_argument("--max-steps", type=count, dest="max_steps", metavar="N",
                     help="smoke run: stop after N training batches; validate and test on N batches each")
    run.add_argument("--dry-run", action="store_true",
                     help="build the network and train one batch of random images; read and write nothing")
    run.add_argument("--nproc", type=count, metavar="N", help="data-parallel processes (default: 1)")
    run.add_argument("--quiet", action="store_true", default=None, help="print only errors and the final result")
    run.add_argument("--no-plots", dest="plots", action="store_false", default=None,
                     help="write no accuracy.png, loss.png or output.png")


def _eval_arguments(p) -> None:
    _shared_arguments(p, training=False)
    p.add_argument("--checkpoint", required=True, metavar="FILE", type=existing_file, help="a last.pt or best.pt written by snnc train")
    p.add_argument("--json", action="store_true", help="print the result as one JSON object instead of a table")


TRAIN = Command(
    "train", "train a network of a .snn file on its dataset (MNIST, CIFAR, N-MNIST, DVS Gesture, SHD, ...)",
    "Train the file's network (the first, or --network) with its recipe: the `train { ... }` block of the\n"
    "network, overridden by the options below. Each epoch trains, then evaluates on the validation split\n"
    "(which chooses best.pt) and on the test set (reported only), and writes last.pt, best.pt, metrics.csv,\n"
    "accuracy.png, loss.png, output.png and TensorBoard logs to --out-dir. Ctrl-C saves last.pt and exits 130;\n"
    "--resume continues exactly where the run stopped. Images per second exclude kernel compilation.",
    "  snnc train models/fc2_mnist.snn --data-dir ../data/mnist\n"
    "  snnc train models/nmnist_plif.snn --data-dir ~/data/NMNIST      # events, binned once and cached\n"
    "  snnc train models/fc2_mnist.snn --dry-run                   # no data needed\n"
    "  snnc train models/sew_resnet_mnist.snn --max-steps 5 --test-subset 256   # a smoke run\n"
    "  snnc train models/fc2_mnist.snn --subset 2000 --epochs 3 --out-dir runs/quick\n"
    "  snnc train models/fc2_mnist.snn --resume runs/Fc2Mnist/last.pt --epochs 20",
    _train_arguments, run_train)

EVAL = Command(
    "eval", "evaluate a checkpoint on the test set",
    "Test loss and accuracy of a checkpoint of snnc train (the same spikes as training's test evaluation),\n"
    "printed as a table (or JSON with --json).",
    "  snnc eval models/fc2_mnist.snn --checkpoint runs/Fc2Mnist/best.pt\n"
    "  snnc eval models/fc2_mnist.snn --checkpoint runs/Fc2Mnist/best.pt --json",
    _eval_arguments, run_eval)
