// The pybind11 module pyimg._C. Importing it loads the shared library, whose static
// TORCH_LIBRARY_FRAGMENT / TORCH_LIBRARY_IMPL blocks register every op with the dispatcher;
// the module reports how it was built and holds the ops' eager entry points (csrc/python/).
#include <pybind11/pybind11.h>

#include "python/eager.h"

namespace py = pybind11;

namespace {

py::dict build_info() {
  py::dict info;
  info["torch_version"] = PYIMG_TORCH_VERSION;
#ifdef PYIMG_WITH_CUDA
  info["with_cuda"] = true;
  info["cuda_arch_list"] = PYIMG_CUDA_ARCH_LIST;
#else
  info["with_cuda"] = false;
  info["cuda_arch_list"] = py::none();
#endif
  return info;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "pyimg's compiled kernels (registered as torch.ops.pyimg.*)";
  m.def("build_info", &build_info, "How this extension was built: torch version, CUDA, archs.");
  py::module_ eager = m.def_submodule("eager", "Entry points of pyimg.ops' public functions");
  pyimg::eager::bind_pixel_shuffle(eager);
  pyimg::eager::bind_max_pool(eager);
  pyimg::eager::bind_batch_norm(eager);
  pyimg::eager::bind_conv2d(eager);
}
