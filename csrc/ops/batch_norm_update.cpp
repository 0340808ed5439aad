// update_running_stats: training's step between batch_norm_stats and bn_prelu on C values, a
// plain loop on the CPU (one pass instead of seven ATen calls, each a dispatch: five for the
// update, two for invstd) and one kernel launch on CUDA.
#include "ops/batch_norm.h"

#include <ATen/Dispatch.h>

#include <utility>

#include "ops/common.h"

namespace pyimg {

bool updatable_running_stat(const std::optional<at::Tensor>& t, const at::Tensor& x) {
  if (!t.has_value()) return true;
  return t->device() == x.device() && t->scalar_type() == accumulate_type(x) &&
         t->dim() == 1 && t->numel() == x.size(1) && (t->stride(0) != 0 || t->numel() == 1) &&
         !t->is_inference();
}

namespace {

// The statistic's values and stride, its version counter bumped as the Python path's in-place
// update bumps it.
template <typename Acc>
std::pair<Acc*, int64_t> written(const std::optional<at::Tensor>& t) {
  if (!t.has_value()) return {nullptr, 0};
  t->unsafeGetTensorImpl()->bump_version();
  return {t->mutable_data_ptr<Acc>(), t->stride(0)};
}

template <typename Acc>
void update_cpu(const std::optional<at::Tensor>& running_mean,
                const std::optional<at::Tensor>& running_var, const at::Tensor& mean,
                at::Tensor& var, int64_t count, double momentum, double eps) {
  const RunningStatsStep<Acc> step(momentum, count, eps);
  const std::pair<Acc*, int64_t> none{nullptr, 0};
  const auto [rm, rm_stride] = count > 0 ? written<Acc>(running_mean) : none;
  const auto [rv, rv_stride] = count > 0 ? written<Acc>(running_var) : none;
  const Acc* batch_mean = mean.const_data_ptr<Acc>();
  Acc* var_then_invstd = var.mutable_data_ptr<Acc>();
  for (int64_t c = 0; c < mean.numel(); ++c) {
    const Acc batch_var = var_then_invstd[c];
    if (rm != nullptr) rm[c * rm_stride] = step.mean(batch_mean[c], rm[c * rm_stride]);
    if (rv != nullptr) rv[c * rv_stride] = step.var(batch_var, rv[c * rv_stride]);
    var_then_invstd[c] = step.invstd(batch_var);
  }
}

}  // namespace

at::Tensor update_running_stats(const std::optional<at::Tensor>& running_mean,
                                const std::optional<at::Tensor>& running_var,
                                const at::Tensor& mean, at::Tensor& var, int64_t count,
                                double momentum, double eps) {
  TORCH_INTERNAL_ASSERT(mean.is_contiguous() && var.is_contiguous() &&
                        mean.scalar_type() == var.scalar_type());
  for (const auto* t : {&running_mean, &running_var}) {
    TORCH_INTERNAL_ASSERT(!t->has_value() ||
                          ((*t)->device() == mean.device() &&
                           (*t)->scalar_type() == mean.scalar_type() &&
                           (*t)->numel() == mean.numel()));
  }
  if (mean.is_cpu()) {
    AT_DISPATCH_FLOATING_TYPES(mean.scalar_type(), "update_running_stats", [&] {
      update_cpu<scalar_t>(running_mean, running_var, mean, var, count, momentum, eps);
    });
    return var;
  }
#ifdef PYIMG_WITH_CUDA
  if (mean.is_cuda()) {
    update_running_stats_cuda(running_mean, running_var, mean, var, count, momentum, eps);
    return var;
  }
#endif
  TORCH_INTERNAL_ASSERT(false, "update_running_stats: no kernel for ", mean.device());
}

}  // namespace pyimg
