// Compat header for the part of ankerl::unordered_dense (v5) that the mediasoup
// worker uses: `map`, `set` and `hash`, including custom hashers that declare
// `is_avalanching` and a transparent string hash. It maps them onto the standard
// unordered containers; semantics the worker relies on (find, emplace, erase by
// iterator or key, iteration) are the same, iteration order is unspecified in both.
// Written for Mafalda Swarm; not derived from the original library's source.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

namespace ankerl::unordered_dense {

namespace detail {
// splitmix64 finaliser: std::hash of integers is the identity on libstdc++, and the
// worker combines several of these, so mix them to keep buckets spread out.
inline std::uint64_t mix(std::uint64_t value) noexcept {
  value ^= value >> 30U;
  value *= 0xbf58476d1ce4e5b9ULL;
  value ^= value >> 27U;
  value *= 0x94d049bb133111ebULL;
  value ^= value >> 31U;
  return value;
}
} // namespace detail

template <class T, class Enable = void>
struct hash {
  using is_avalanching = void;
  std::uint64_t operator()(const T& value) const noexcept {
    return detail::mix(static_cast<std::uint64_t>(std::hash<T>{}(value)));
  }
};

template <class CharT>
struct hash<std::basic_string<CharT>> {
  using is_avalanching = void;
  using is_transparent = void;
  std::uint64_t operator()(std::basic_string_view<CharT> value) const noexcept {
    return static_cast<std::uint64_t>(std::hash<std::basic_string_view<CharT>>{}(value));
  }
};

template <class CharT>
struct hash<std::basic_string_view<CharT>> {
  using is_avalanching = void;
  using is_transparent = void;
  std::uint64_t operator()(std::basic_string_view<CharT> value) const noexcept {
    return static_cast<std::uint64_t>(std::hash<std::basic_string_view<CharT>>{}(value));
  }
};

template <class Key, class T, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>,
          class Allocator = std::allocator<std::pair<const Key, T>>>
using map = std::unordered_map<Key, T, Hash, KeyEqual, Allocator>;

template <class Key, class Hash = hash<Key>, class KeyEqual = std::equal_to<Key>,
          class Allocator = std::allocator<Key>>
using set = std::unordered_set<Key, Hash, KeyEqual, Allocator>;

} // namespace ankerl::unordered_dense
