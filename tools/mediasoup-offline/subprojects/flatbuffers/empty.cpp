// Intentionally empty: meson can only link_whole a static_library with a source.
namespace mafalda_offline_flatbuffers_stub {}
