/* advect: optimal and diffusion transport on CPU and NVIDIA GPUs. Umbrella header. */
#ifndef ADVECT_ADVECT_H
#define ADVECT_ADVECT_H

#include "advect/core.h"
#include "advect/interaction.h"
#include "advect/random.h"
#include "advect/field.h"
#include "advect/sampler.h"
#include "advect/poisson.h"
#include "advect/bbot.h"

#endif
