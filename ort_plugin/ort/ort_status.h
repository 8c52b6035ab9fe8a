// Turning C++ exceptions into ORT statuses at the plugin boundary: nothing may unwind into ORT.
#pragma once
#include <onnxruntime_cxx_api.h>

#include <new>
#include <string>

#include "kernels/errors.h"

namespace onnx_sparsify {

// Runs fn; returns null on success or an OrtStatus whose message starts with `where`.
template <typename Fn>
OrtStatusPtr StatusFromExceptions(const OrtApi& api, const std::string& where, Fn&& fn) noexcept {
  try {
    fn();
    return nullptr;
  } catch (const InvalidArgument& e) {
    return api.CreateStatus(ORT_INVALID_ARGUMENT, (where + ": " + e.what()).c_str());
  } catch (const Ort::Exception& e) {
    return api.CreateStatus(e.GetOrtErrorCode(), (where + ": " + e.what()).c_str());
  } catch (const std::bad_alloc&) {
    return api.CreateStatus(ORT_FAIL, (where + ": out of memory").c_str());
  } catch (const std::exception& e) {
    return api.CreateStatus(ORT_FAIL, (where + ": " + e.what()).c_str());
  } catch (...) {
    return api.CreateStatus(ORT_FAIL, (where + ": unknown error").c_str());
  }
}

}  // namespace onnx_sparsify
