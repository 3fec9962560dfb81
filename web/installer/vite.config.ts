// The build is deterministic and its file names are fixed (no content hashes): the stack
// declares one S3 object per file, so the resource graph never depends on the bundle's bytes.
// Files are served with `Cache-Control: no-cache` (revalidated by ETag), so fixed names never
// serve a stale mix. `python -m tools.build_web` runs this with --outDir build/web/installer.
import { defineConfig } from "vitest/config";

export default defineConfig({
  base: "/",
  // amazon-cognito-identity-js's Buffer polyfill expects Node's `global`.
  define: { global: "globalThis" },
  build: {
    target: "es2022",
    outDir: "dist",
    emptyOutDir: true,
    sourcemap: false,
    modulePreload: false,
    assetsInlineLimit: 0,
    reportCompressedSize: true,
    rollupOptions: {
      output: {
        entryFileNames: "assets/app.js",
        chunkFileNames: "assets/[name].js",
        assetFileNames: "assets/app[extname]",
      },
    },
  },
  server: { fs: { allow: ["..", "../../lambdas/contracts", "../../lambdas/cvm_registration"] } },
  test: { include: ["tests/**/*.test.ts"], environment: "node" },
});
