"""Upper bounds of the sizes a config may ask for, shared by every section."""

# Upper bounds of sizes, generous for a large GPU and far below what makes an allocation or an integer overflow:
# a value past one is refused by name before anything is built, not by the allocator mid-run.
MAX_SIDE = 16384  # pixels per image side (a 16384 x 16384 RGB image is 768 MiB as uint8)
MAX_CHANNELS = 4096  # convolution channels and code dimensions (a 4096 -> 4096 4x4 conv is 1 GiB of fp32 weights)
MAX_CODEBOOK = 2**20  # codes K (VQ-VAE papers use 512 to 2^18; the prior's logits are K per latent)
MAX_CROPS = 100_000  # random crops per image (every crop of every image is held in memory as uint8)
MAX_BATCH = 2**16  # images or code grids per step
MAX_EPOCHS = 10**6  # passes over the training split
MAX_STEPS = 10**9  # training steps a code may stay unused (a counter compared in int64)
MAX_SEED = 2**40  # the trainer seeds epoch e with seed x 1,000,003 + e, which must fit torch's 64-bit seed
