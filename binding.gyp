{
  "variables": {
    "pkcs11_include": "<!(node -p \"require('path').join(require('path').dirname(require.resolve('pkcs11js/package.json')), 'includes', 'pkcs11')\")",
    "sb_glibc": "<!(node -p \"process.report.getReport().header.glibcVersionRuntime ? 'glibc' : 'other'\")"
  },
  "target_defaults": {
    "conditions": [
      ["OS == 'linux' and sb_glibc == 'glibc' and target_arch in ('x64', 'arm64')", {
        "ldflags": ["-Wl,@<(module_root_dir)/native/common/glibc_compat.opts"]
      }]
    ]
  },
  "targets": [
    {
      "target_name": "signbridge-pkcs11",
      "type": "shared_library",
      "product_prefix": "lib",
      "sources": [
        "native/common/wire.cpp",
        "native/common/framing.cpp",
        "native/common/messages.cpp",
        "native/pkcs11/entry.cpp",
        "native/pkcs11/unsupported.cpp",
        "native/pkcs11/bridge.cpp",
        "native/pkcs11/bridge_common.cpp",
        "native/pkcs11/bridge_sessions.cpp",
        "native/pkcs11/bridge_sign.cpp",
        "native/pkcs11/bridge_digest.cpp",
        "native/pkcs11/bridge_random.cpp",
        "native/pkcs11/bridge_object_size.cpp",
        "native/pkcs11/bridge_cancel.cpp",
        "native/pkcs11/interfaces.cpp",
        "native/pkcs11/status.cpp",
        "native/pkcs11/locking.cpp",
        "native/pkcs11/state.cpp",
        "native/pkcs11/fork.cpp",
        "native/pkcs11/inventory.cpp",
        "native/pkcs11/sessions.cpp",
        "native/pkcs11/sign_ops.cpp",
        "native/pkcs11/sha2.cpp",
        "native/pkcs11/digest_info.cpp",
        "native/pkcs11/client_config.cpp",
        "native/pkcs11/connection.cpp",
        "native/pkcs11/transport_posix.cpp",
        "native/pkcs11/autostart.cpp",
        "native/pkcs11/daemon_client.cpp",
        "native/pkcs11/peer_trust.cpp",
        "native/pkcs11/notice.cpp",
        "native/common/glibc_compat.c"
      ],
      "include_dirs": ["<(pkcs11_include)"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-fno-rtti", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "ldflags": [
        "-Wl,--version-script=<(module_root_dir)/native/pkcs11/exports.map",
        "-static-libstdc++",
        "-Wl,-z,defs",
        "-pthread"
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      }
    },
    {
      "target_name": "signbridge_addon",
      "sources": [
        "native/addon/addon.cpp",
        "native/common/glibc_compat.c"
      ],
      "include_dirs": ["<!(node -p \"require('node-addon-api').include_dir\")"],
      "defines": ["NAPI_VERSION=8", "NAPI_CPP_EXCEPTIONS"],
      "cflags!": ["-fno-exceptions"],
      "cflags_cc!": ["-fno-exceptions", "-std=gnu++17"],
      "cflags_cc": ["-std=c++17", "-fexceptions", "-fvisibility=hidden", "-fvisibility-inlines-hidden"],
      "conditions": [
        ["OS == 'linux'", {
          "sources": [
            "native/addon/native_signer.cpp",
            "native/common/wire.cpp",
            "native/common/framing.cpp",
            "native/common/messages.cpp"
          ],
          "include_dirs": [
            "native/common",
            "native/pkcs11",
            "<(pkcs11_include)"
          ],
          "ldflags": ["-static-libstdc++", "-Wl,--exclude-libs,ALL"],
          "libraries": ["-Wl,--no-as-needed", "-l:libdl.so.2", "-Wl,--as-needed"]
        }]
      ],
      "xcode_settings": {
        "GCC_ENABLE_CPP_EXCEPTIONS": "YES",
        "CLANG_CXX_LANGUAGE_STANDARD": "c++17"
      }
    }
  ]
}
