// All vector backends, the one kernels use when none is named, and the list tests and benchmarks iterate.
//
// `Default` is Highway. To choose another at build time, define GRIFFIN_DEFAULT_BACKEND to the backend's
// lower-case name, e.g. `-DGRIFFIN_DEFAULT_BACKEND=xsimd` (or `scalar`, `highway`), or in CMake
// `target_compile_definitions(app PRIVATE GRIFFIN_DEFAULT_BACKEND=scalar)`.
#pragma once

#include <tuple>

#include "griffin/simd/backend.hpp"
#include "griffin/simd/highway.hpp"
#include "griffin/simd/scalar.hpp"
#include "griffin/simd/xsimd.hpp"

// The name is pasted onto GRIFFIN_DETAIL_BACKEND_ to name the type, so an unknown one fails to compile
// with that macro in the message.
#define GRIFFIN_DETAIL_BACKEND_scalar ::griffin::simd::Scalar
#define GRIFFIN_DETAIL_BACKEND_xsimd ::griffin::simd::Xsimd
#define GRIFFIN_DETAIL_BACKEND_highway ::griffin::simd::Highway
#define GRIFFIN_DETAIL_BACKEND_EXPAND(name) GRIFFIN_DETAIL_BACKEND_##name
#define GRIFFIN_DETAIL_BACKEND(name) GRIFFIN_DETAIL_BACKEND_EXPAND(name)

namespace griffin::simd {

#if defined(GRIFFIN_DEFAULT_BACKEND)
using Default = GRIFFIN_DETAIL_BACKEND(GRIFFIN_DEFAULT_BACKEND);
#else
using Default = Highway;
#endif
static_assert(VectorBackend<Default>);

using AllBackends = std::tuple<Scalar, Xsimd, Highway>;

// Calls f.template operator()<B>() for each backend B in AllBackends, in order; with a templated lambda
// (`[]<class B>() { SUBCASE(B::name) { ... } }`) that is one subcase per backend.
template <class F>
void for_each_backend(F&& f) {
  [&]<class... B>(std::tuple<B...>*) { (f.template operator()<B>(), ...); }(static_cast<AllBackends*>(nullptr));
}

}  // namespace griffin::simd
