// heap.py on MicroPython's 32-bit WebAssembly port (npm @micropython/micropython-webassembly-pyscript),
// where objects have the ESP32's sizes (4-byte pointers), unlike the 64-bit unix port:
//   node heap32.mjs LIBDIR_WITH_MPY FIRMWARE_HOST_MICROPYTHON_DIR [nogc]
// Run from a folder where the npm package is installed (it is looked up there).
import fs from "node:fs";
import path from "node:path";
import { pathToFileURL } from "node:url";

const entry = path.resolve("node_modules/@micropython/micropython-webassembly-pyscript/micropython.mjs");
const { loadMicroPython } = await import(pathToFileURL(entry).href);

const [lib, here] = process.argv.slice(2);
const mp = await loadMicroPython({ stdout: (t) => process.stdout.write(t + "\n") });
for (const dir of ["/lib", "/here", "/here/fakes", "/here/wasm", "/work"]) mp.FS.mkdir(dir);
const copy = (from, to) => {
  for (const name of fs.readdirSync(from)) if (/\.(py|mpy)$/.test(name)) mp.FS.writeFile(`${to}/${name}`, fs.readFileSync(`${from}/${name}`));
};
copy(lib, "/lib");
copy(`${here}/fakes`, "/here/fakes");
copy(`${here}/wasm`, "/here/wasm");
mp.FS.writeFile("/here/wasm/pure_aes.py", fs.readFileSync(`${here}/pure_aes.py`));
mp.runPython(`ARGS = ["/lib", "/here", "/work"${process.argv[4] ? `, "${process.argv[4]}"` : ""}]\n` + fs.readFileSync(`${here}/heap.py`, "utf8"));
