// Eager entry of pyimg.ops.batch_norm_prelu and batch_norm_add (the C++ path of
// pyimg/ops/batch_norm.py's _batch_norm_fused, in eval and in training). Calls that stock
// rejects take the Python path, which raises stock's errors: not 4-D, one value per channel
// when training, missing running statistics in eval, a residual of another shape, per-channel
// tensors of another device or size, relu with a PReLU weight, a negative eps (or not a
// positive one when training), one running statistic without the other when training. So do
// running statistics that training updates in another dtype than the accumulation type: the
// Python path converts them.
#include "python/eager.h"

#include "ops/batch_norm.h"
#include "ops/common.h"

namespace pyimg::eager {

using StatsSignature = std::tuple<at::Tensor, at::Tensor>(const at::Tensor&);
using ForwardSignature = at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&,
                                    const std::optional<at::Tensor>&,
                                    const std::optional<at::Tensor>&,
                                    const std::optional<at::Tensor>&,
                                    const std::optional<at::Tensor>&, bool, bool);

static bool fits_channels(const std::optional<at::Tensor>& t, const at::Tensor& x, bool one_ok) {
  if (!t.has_value()) return true;
  const int64_t n = t->numel();
  return t->device() == x.device() && t->dim() == 1 &&
         (n == x.size(1) || (one_ok && n == 1));
}

static py::object batch_norm_fused(py::handle x_obj, py::handle running_mean_obj,
                                   py::handle running_var_obj, py::handle weight_obj,
                                   py::handle bias_obj, py::handle prelu_weight_obj,
                                   py::handle training_obj, py::handle momentum_obj,
                                   py::handle eps_obj, py::handle residual_obj,
                                   py::handle relu_obj) {
  at::Tensor x;
  std::optional<at::Tensor> running_mean, running_var, weight, bias, prelu_weight, residual;
  bool training = false, relu = false;
  double momentum = 0, eps = 0;
  if (!unpack(x_obj, x) || !unpack(running_mean_obj, running_mean) ||
      !unpack(running_var_obj, running_var) || !unpack(weight_obj, weight) ||
      !unpack(bias_obj, bias) || !unpack(prelu_weight_obj, prelu_weight) ||
      !unpack(training_obj, training) || !unpack(momentum_obj, momentum) ||
      !unpack(eps_obj, eps) || !unpack(residual_obj, residual) || !unpack(relu_obj, relu) ||
      x.dim() != 4 || !serves(x)) {
    return py::none();
  }
  const int64_t per_channel = x.size(1) == 0 ? 0 : x.numel() / x.size(1);
  if ((training && per_channel == 1) ||
      (!training && (!running_mean.has_value() || !running_var.has_value())) ||
      (residual.has_value() && residual->sizes() != x.sizes()) ||
      (relu && prelu_weight.has_value()) || eps < 0 || (training && eps <= 0) ||
      (training && running_mean.has_value() != running_var.has_value()) ||
      (training && !(updatable_running_stat(running_mean, x) &&
                     updatable_running_stat(running_var, x))) ||
      !fits_channels(running_mean, x, false) ||
      !fits_channels(running_var, x, false) || !fits_channels(weight, x, false) ||
      !fits_channels(bias, x, false) || !fits_channels(prelu_weight, x, true)) {
    return py::none();
  }
  const at::ScalarType acc = accumulate_type(x);
  at::Tensor mean, invstd;
  if (training) {
    static const auto stats = typed_op<StatsSignature>("pyimg::batch_norm_stats");
    // Below autograd: bn_prelu's backward differentiates through the statistics itself.
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    at::Tensor var;
    std::tie(mean, var) = stats.call(x);
    invstd = update_running_stats(running_mean, running_var, mean, var, per_channel, momentum,
                                  eps);
  } else {
    mean = *in_dtype(running_mean, acc);
    invstd = in_dtype(running_var, acc)->add(eps).rsqrt();
  }
  weight = in_dtype(weight, acc);
  bias = in_dtype(bias, acc);
  prelu_weight = in_dtype(prelu_weight, acc);
  residual = in_dtype(residual, x.scalar_type());
  static const auto forward = typed_op<ForwardSignature>("pyimg::bn_prelu");
  const bool record = records_gradient(x, mean, invstd, weight, bias, prelu_weight, residual);
  return call(forward, record, x, mean, invstd, weight, bias, prelu_weight, residual, training,
              relu);
}

void bind_batch_norm(py::module_& m) { m.def("batch_norm_fused", &batch_norm_fused); }

}  // namespace pyimg::eager
