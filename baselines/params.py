"""Every built-in baseline's parameters, and the backbone names, without importing torch.

Validating a protocol checks each baseline's ``params`` against its pydantic model and ``model.backbone``
against the known backbones; both live here so that loading, listing and validating protocols never import
torch or torchvision. The method modules (``age_regression``, ``pairwise``, ``face_recognition``,
``dlib_embedder``) use these same models as their ``Params``; ``facebench.baselines.specs`` names them in
the ``BASELINES`` registry.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class BaselineParams(BaseModel):
    """Base for per-baseline parameters: unknown keys are errors, values are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True)


# ------------------------------------------------------------------ seed 000: age regression (eq. 2-5)


class SourceOnlyParams(BaselineParams):
    """The source-only regressor (section 3.1), with the optional smoothing term of eq. 2, 3 and 5."""

    smoothing_sigma: float | None = Field(None, gt=0, description="σ of eq. 3; None: median heuristic")
    smoothing_weight: float = Field(0.0, ge=0, description="weight of the smoothing term; 0: off")


class AdaptationParams(BaselineParams):
    """Parameters of equation 4/5's extra terms (dann and mmd)."""

    layers: tuple[Literal["conv", "fc1", "fc2", "fc3", "fc4"], ...] = Field(
        ("fc1",), description="activations to align (Table 3: conv+fc123, conv+fc1, fc1, fc123)")
    gamma: float = Field(1.0, ge=0, description="weight γ of the adaptation term (Tables 4, 6)")
    warmup_fraction: float = Field(0.0, ge=0, lt=1, description="share of the epochs trained source-only before "
                                   "adaptation starts (the 'pre-trained regressor' rows of Tables 4-5)")
    adversary_lr: float = Field(1e-3, gt=0, description="SGD learning rate of the domain discriminators (dann; "
                                "section 4.2: 'learning rate 1e-3 ... we use that for all our models')")
    smoothing_sigma: float | None = Field(None, gt=0, description="σ of eq. 3; None: no smoothing term")
    smoothing_weight: float = Field(0.0, ge=0, description="weight of the smoothing term (eq. 5's σ-weighted term)")


class MMDParams(AdaptationParams):
    """Adds the kernel of section 3.6.2's MMD ("For mmd, we use gausian kernel")."""

    kernel: Literal["gaussian", "multi_gaussian"] = Field(
        "gaussian", description="'gaussian': one Gaussian kernel, bandwidth by the median heuristic (the paper's "
                                "setting; it gives no bandwidth); 'multi_gaussian': DAN's sum of five Gaussian "
                                "kernels (a variant, not the paper's)")


class PairwiseParams(BaselineParams):
    """The pairwise model of sections 3.2-3.5 (eq. 5) and its MDS inference (section 4.4.5)."""

    alpha: float = Field(1.0, ge=0, description="weight of the rank loss (equation 5's α)")
    beta: float = Field(0.1, ge=0, description="weight of the identity/antisymmetry constraints (β)")
    rank: bool = Field(True, description="use the rank head (False: Table 7's 'Regression' row, α = 0)")
    pairs_per_image: int = Field(1, ge=1, description="training pairs per source image per batch")
    references: int = Field(8, ge=1, description="k: random other images each image is compared with at inference")
    chunk_size: int = Field(64, ge=2, description="images per MDS problem at inference (plus the anchors)")
    mds: Literal["mds", "least_squares"] = Field("mds", description="'mds' (the paper) or the least-squares cross-check")
    gamma: float = Field(0.0, ge=0, description="γ: weight of the adversarial term on target pairs (0: off)")
    adapt_layer: Literal["conv", "fc1", "fc2", "fc3", "fc4"] = Field("fc1", description="pair features the adversary sees")
    adversary_lr: float = Field(1e-3, gt=0, description="SGD learning rate of the domain discriminator (seed 000 "
                                "section 4.2: 'learning rate 1e-3 ... we use that for all our models')")
    smoothing_weight: float = Field(0.0, ge=0, description="σ-weight of the graph-Laplacian smoothness term (0: off)")
    smoothing_sigma: float | None = Field(None, gt=0, description="σ of eq. 3; None: median heuristic")
    anchor_scale: Literal["anchors", "unit"] = Field(
        "anchors", description="'anchors': fit scale and offset of the MDS axis to the anchors (the paper); "
                               "'unit': offset only (differences are already in years)")


# ------------------------------------------------------------- seed 002: face recognition (eq. 6, 7)


class ArcFaceParams(BaselineParams):
    """The identity loss (eq. 6), the embedding and the test-time flip of section 4.1."""

    margin_type: Literal["arcface", "cosface"] = Field(
        "arcface", description="arcface: s·cos(θ_y + m) (eq. 6); cosface: s·(cos θ_y − m)")
    scale: float = Field(64.0, gt=0, description="s of eq. 6 (section 4.1: 64)")
    margin: float = Field(0.35, ge=0, le=1.5, description="m of eq. 6: radians for arcface, a cosine offset for "
                          "cosface (section 4.1: 0.35; the usual ArcFace setting elsewhere is 0.5)")
    easy_margin: bool = Field(False, description="arcface only: apply the margin only where cos θ_y > 0, instead of "
                              "the cos θ − m·sin m fallback beyond θ_y > π − m")
    embedding_dim: int = Field(512, ge=2, description="d of the encoder's FC output (section 4.1: 512)")
    init: str | None = Field(None, description="path to a FaceEmbedder state dict pre-trained on a general face "
                             "dataset (Algorithm 1, line 1); None: train from the protocol's model.pretrained")
    flip_test: bool = Field(True, description="embedding = normalise(concat(f(x), f(flip x))), of dimension "
                            "2·embedding_dim (section 4.1); False: normalise(f(x)), of dimension embedding_dim")


class ArcFaceAgeParams(ArcFaceParams):
    """Adds the age-group classifier of section 3.4 ("+Age" in Table 5)."""

    age_groups: int = Field(8, ge=2, le=20, description="number of age groups of about equal size (section 3.4: "
                            "8 to 10), cut at quantiles of the training ages")
    lambda_age: float = Field(0.1, ge=0, description="λ_AGE of eq. 7 (section 4.1: 0.1)")


class MTMIMParams(ArcFaceAgeParams):
    """Adds the factorisation unit and the CLUB mutual-information penalty of eq. 7."""

    lambda_mim: float = Field(1e-4, ge=0, description="λ_MIM of eq. 7 (section 4.1: 0.0001)")
    club_steps: int = Field(5, ge=1, description="MI-estimator updates per encoder update (section 4.1: 5)")
    club_lr: float = Field(1e-5, gt=0, description="Adam learning rate of the MI estimator q_σ (section 4.1: 1e-5; "
                           "short runs need more, e.g. 1e-3)")
    club_hidden: int | None = Field(None, ge=1, description="hidden width of q_σ's μ and log σ² MLPs; None: embedding_dim")
    club_estimator: Literal["pairs", "sample"] = Field(
        "pairs", description="pairs: eq. 3 over all N² pairs (exact, O(N·d)); sample: one shuffled negative per sample")
    factor_layers: Literal[1, 2] = Field(1, description="φ of x_age = φ(x): 1 = one FC layer (section 4.1), "
                                         "2 = FC–ReLU–FC")


class DlibResNetParams(BaselineParams):
    """dlib's pre-trained descriptor: detection, alignment and jittering settings."""

    upsample: int = Field(1, ge=0, le=4, description="times the image is upsampled before face detection "
                          "(each doubles the side, finding smaller faces, at 4× the cost)")
    num_jitters: int = Field(0, ge=0, description="average the descriptors of this many randomly jittered "
                             "copies (0 or 1: none; dlib suggests 100 for the most accurate, 100× slower)")
    padding: float = Field(0.25, ge=0, le=1, description="margin around the aligned chip, as dlib's default")
    normalize: bool = Field(True, description="L2-normalise the descriptors (cosine comparison)")


# ------------------------------------------------------------- seed 001: race transfer (section 2)


class RaceTransferParams(BaselineParams):
    """Seed 001 section 2's classifier: a backbone's features into the MLP of section 2.1, "tuned" (backbone frozen)
    and optionally "fine-tuned" (section 2.2: the last layers unfrozen, from the tuned weights, at a lower rate)."""

    backbone: str | None = Field(None, description="resnet50, vgg16, vgg19 (torchvision), vggface (the VGG-Face "
                                 "network, weights from a local file) or small_cnn; None: the protocol's model.backbone")
    weights: str | None = Field("protocol", description="'protocol': model.pretrained; null: random weights (the "
                                "quick profile, a stated deviation); a torchvision weights name (IMAGENET1K_V1); or a "
                                "path to a local state dict (vggface: the vgg_face_dag port's .pth, see "
                                "facebench.baselines.race_transfer)")
    vggface_weights: str = Field("~/.cache/facebench/weights/vgg_face_dag.pth", description="backbone vggface with "
                                 "weights 'protocol' and model.pretrained set: the VGG-Face state dict to load (format: "
                                 "facebench.baselines.nets.VGGFace); absent: one sentence")
    hidden: tuple[int, ...] = Field((64, 64, 64), description="section 2.1: 3 dense layers of 64")
    dropout: float = Field(0.5, ge=0, lt=1, description="section 2.1: dropout 0.5")
    finetune: bool = Field(False, description="section 2.2: after tuning, unfreeze the last layers and train again")
    unfreeze: int = Field(5, ge=1, description="section 2.2: 'the last 5 layers' (units: a conv layer of VGG, a "
                          "residual block of ResNet, a conv-BN-ReLU of small_cnn)")
    tune_optimizer: Literal["adam", "sgd", "rmsprop"] = Field("adam", description="Table 3's first optimiser (tuning)")
    finetune_optimizer: Literal["adam", "sgd", "rmsprop"] = Field("adam", description="Table 3's second optimiser")
    finetune_lr: float | None = Field(None, gt=0, description="section 2.2 'a lower learning rate'; None: lr / 10")
    tune_epochs: int | None = Field(None, ge=1, description="epochs of the tuning stage; None: training.epochs")
    finetune_epochs: int | None = Field(None, ge=1, description="None: training.epochs")
    augment: bool = Field(False, description="section 2.2: random zoom and shear of the source images (Table 2)")
    zoom: float = Field(0.2, ge=0, lt=1, description="largest zoom in or out (Keras zoom_range)")
    shear: float = Field(0.2, ge=0, lt=1, description="largest shear (Keras shear_range, radians)")
    face_crop: float = Field(1.0, gt=0, le=1, description="share of the image side kept around the centre before "
                             "resizing (section 2.2's face crop without landmark alignment); 1: none")
    alignment: Literal["none", "openface"] = Field(
        "none", description="section 2.2's pre-processing: openface = every image (training and test) cropped and "
        "aligned on dlib's 68 landmarks as OpenFace's AlignDlib does (facebench.data.alignment; the dlib extra); "
        "none = the whole image resized")
    class_weight: Literal["balanced", "none"] = Field(
        "balanced", description="balanced: each sample's BCE term is weighted n / (2 n_class), so both classes count "
        "equally whatever their shares in the training images (scikit-learn's class_weight='balanced'); none: the "
        "paper's plain BCE")
    train_on: Literal["source", "target"] = Field("source", description="target: seed 001's in-domain benchmark, "
                                                  "trained on the test dataset's labelled train images")


# ------------------------------------------------------- seed 001 section 3 and seed 004: face generators


class AdversarialParams(BaselineParams):
    """What StarGAN's and AcGAN's params share: the widths of the shared generator trunk and critic
    (``facebench.baselines.gan``) and the sample grid."""

    conv_dim: int = Field(64, ge=1, description="generator width of the first layer (doubled twice)")
    repeat_num: int = Field(6, ge=0, description="residual blocks of the generator")
    d_conv_dim: int = Field(64, ge=1, description="critic width of the first layer (doubled per layer)")
    sample_images: int = Field(8, ge=0, description="validation images in the sample grid written after each epoch")


class StarGANParams(AdversarialParams):
    """StarGAN (Choi et al. 2018) as seed 001 section 3.3 trains it: generator and critic widths, the weights of
    equations 5 and 8, the critic steps per generator step and Adam's betas. Defaults are the paper's (and the
    reference code's, yunjey/stargan ``main.py``)."""

    attributes: tuple[str, ...] = Field(
        ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"), min_length=1,
        description="the dataset's label columns the generator is conditioned on (its c); CelebA's 0/1 attributes "
                    "(the reference code's default five)")
    exclusive: tuple[tuple[str, ...], ...] = Field(
        (("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair"),),
        description="attributes of which at most one is 1 (hair colours): asking for one sets the others to 0, as the "
                    "reference code's create_labels does")
    d_repeat_num: int = Field(6, ge=1, description="stride-2 layers of the critic; model.image_size must be a "
                              "multiple of 2^d_repeat_num")
    lambda_cls: float = Field(1.0, ge=0, description="λ_cls of eq. 5")
    lambda_rec: float = Field(10.0, ge=0, description="λ_rec of eq. 5")
    lambda_gp: float = Field(10.0, ge=0, description="λ_gp of eq. 8")
    n_critic: int = Field(5, ge=1, description="critic steps per generator step (seed 001 section 3.3: 5)")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam β1 (seed 001 section 3.3: 0.5)")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam β2 (seed 001 section 3.3: 0.999)")
    lr_decay_start: float | None = Field(
        0.5, ge=0, lt=1, description="share of the training steps after which both learning rates fall linearly to 0 "
                                     "(the reference code: the last 100,000 of 200,000 iterations); null: constant")


class AcGANParams(AdversarialParams):
    """AcGAN (seed 004): the generator's attention and colour masks, the critic with an age-group head, and the
    weights of equations 2-5. Defaults are section 3.1's."""

    age_groups: tuple[int, ...] = Field(
        (10, 21, 31, 41, 51), min_length=2, description="lower edges of the age groups the generator is conditioned on "
        "(section 3.1: 10-20, 21-30, 31-40, 41-50, 51+); an age below the first edge is in the first group")
    d_repeat_num: int = Field(5, ge=1, description="stride-2 layers of the critic (5 at 224 px: a 7 x 7 map); "
                              "model.image_size must be a multiple of 2^d_repeat_num")
    lambda_adv: float = Field(10.0, ge=0, description="λ_adv of eq. 5 (section 3.1: 10)")
    lambda_att: float = Field(2.0, ge=0, description="λ_att of eq. 5 (section 3.1: 2)")
    lambda_cls: float = Field(100.0, ge=0, description="λ_cls of eq. 5 (section 3.1: 100)")
    lambda_gp: float = Field(10.0, ge=0, description="λ_gp of eq. 2 (section 3.1: 10)")
    lambda_tv: float = Field(5e-5, ge=0, description="λ_TV of eq. 3 (section 3.1: 5e-5)")
    loss_form: Literal["paper", "reference_code"] = Field(
        "paper", description="paper: eq. 3's squared total variation and ‖A‖₂, eq. 2's penalty inside λ_adv·L_adv; "
                             "reference_code (JensonZhu14/AcGAN): mean(A) (L1) and absolute differences, the penalty "
                             "weighted by λ_gp alone")
    generator_every: int = Field(1, ge=1, description="a generator step every this many critic steps (section 3.1: "
                                 "'we train the G and D in turn every iteration'; the reference code: 2)")
    beta1: float = Field(0.5, ge=0, lt=1, description="Adam β1 (the paper says Adam only; the reference code's 0.5)")
    beta2: float = Field(0.999, ge=0, lt=1, description="Adam β2 (the reference code's 0.999)")


# ------------------------------------------------------------------------------------------ backbones

#: torchvision's classification models (``torchvision.models.list_models(module=torchvision.models)`` of
#: torchvision 0.29), written out so that validating ``model.backbone`` does not import torchvision; a test
#: compares it with the installed torchvision, and ``nets.build_backbone`` still asks torchvision itself.
TORCHVISION_BACKBONES: tuple[str, ...] = (
    "alexnet", "convnext_base", "convnext_large", "convnext_small", "convnext_tiny", "densenet121", "densenet161",
    "densenet169", "densenet201", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2", "efficientnet_b3",
    "efficientnet_b4", "efficientnet_b5", "efficientnet_b6", "efficientnet_b7", "efficientnet_v2_l",
    "efficientnet_v2_m", "efficientnet_v2_s", "googlenet", "inception_v3", "maxvit_t", "mnasnet0_5", "mnasnet0_75",
    "mnasnet1_0", "mnasnet1_3", "mobilenet_v2", "mobilenet_v3_large", "mobilenet_v3_small", "regnet_x_16gf",
    "regnet_x_1_6gf", "regnet_x_32gf", "regnet_x_3_2gf", "regnet_x_400mf", "regnet_x_800mf", "regnet_x_8gf",
    "regnet_y_128gf", "regnet_y_16gf", "regnet_y_1_6gf", "regnet_y_32gf", "regnet_y_3_2gf", "regnet_y_400mf",
    "regnet_y_800mf", "regnet_y_8gf", "resnet101", "resnet152", "resnet18", "resnet34", "resnet50",
    "resnext101_32x8d", "resnext101_64x4d", "resnext50_32x4d", "shufflenet_v2_x0_5", "shufflenet_v2_x1_0",
    "shufflenet_v2_x1_5", "shufflenet_v2_x2_0", "squeezenet1_0", "squeezenet1_1", "swin_b", "swin_s", "swin_t",
    "swin_v2_b", "swin_v2_s", "swin_v2_t", "vgg11", "vgg11_bn", "vgg13", "vgg13_bn", "vgg16", "vgg16_bn", "vgg19",
    "vgg19_bn", "vit_b_16", "vit_b_32", "vit_h_14", "vit_l_16", "vit_l_32", "wide_resnet101_2", "wide_resnet50_2",
)

#: Every name ``model.backbone`` accepts: the CPU-sized ``small_cnn`` and the torchvision models.
BACKBONE_NAMES: tuple[str, ...] = ("small_cnn", "vggface", *TORCHVISION_BACKBONES)
