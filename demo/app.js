// The hello page of the Typed Data Explorer: load one signed unit, greet.
import { openRegistry, loadUnit, fetchBytes, formatBytes, MoltError } from './molt.js';

const UNIT = { name: 'hello', version: '0.1.0', target: 'wasm32-wasi' };
const $ = (id) => document.getElementById(id);
const ms = (x) => `${x.toFixed(1)} ms`;

function showError(e) {
  $('error').hidden = false;
  $('error-code').textContent = e instanceof MoltError ? e.code : e?.name ?? 'Error';
  $('error-message').textContent = e?.message ?? String(e);
}

function clearError() {
  $('error').hidden = true;
}

function setProgress(loaded, total) {
  const bar = $('progress');
  if (total) {
    const pct = Math.min(100, Math.floor((loaded / total) * 100));
    bar.setAttribute('aria-valuenow', String(pct));
    bar.classList.remove('indeterminate');
    bar.querySelector('.fill').style.width = `${pct}%`;
    $('progress-label').textContent = `Downloading unit: ${formatBytes(loaded)} / ${formatBytes(total)} (${pct}%)`;
  } else {
    bar.removeAttribute('aria-valuenow');
    bar.classList.add('indeterminate');
    $('progress-label').textContent = `Downloading unit: ${formatBytes(loaded)}`;
  }
}

// Marks every check before `stage` done and `stage` active.
const order = [...document.querySelectorAll('#checks li')].map((li) => li.dataset.stage);
function reach(stage) {
  const i = stage === 'ready' ? order.length : order.indexOf(stage);
  if (i < 0) return;
  document.querySelectorAll('#checks li').forEach((li, j) => {
    li.classList.toggle('done', j < i);
    li.classList.toggle('active', j === i);
  });
}

function failStage() {
  const active = document.querySelector('#checks li.active');
  active?.classList.replace('active', 'failed');
  $('progress').classList.add('failed');
}

const labels = {
  snapshot: 'Verifying the registry snapshot…', index: 'Checking the index…',
  signature: 'Fetching the manifest signature…', manifest: 'Verifying the manifest…',
  schemas: 'Checking schemas…', compile: 'Compiling…', init: 'Initialising…',
};

async function main() {
  const keysBytes = await fetchBytes(new URL('./trusted-keys.json', location.href), { maxSize: 64 * 1024, what: 'trusted keys' });
  let trustedKeys;
  try {
    trustedKeys = JSON.parse(new TextDecoder().decode(keysBytes));
  } catch (e) {
    throw new MoltError('KEY_INVALID', `trusted-keys.json: expected a JSON array of minisign .pub texts (${e.message}); rebuild the site with scripts/site`);
  }
  const registry = openRegistry({ url: './registry/', trustedKeys });
  let artifactTotal = 0;
  const unit = await loadUnit(registry, {
    ...UNIT,
    onProgress(p) {
      reach(p.stage);
      if (p.stage === 'artifact' && p.loaded !== undefined) {
        artifactTotal = p.total ?? 0;
        setProgress(p.loaded, p.total);
      } else if (labels[p.stage]) {
        $('progress-label').textContent = labels[p.stage];
      }
    },
  });
  reach('ready');
  setProgress(unit.metrics.artifactBytes, artifactTotal || unit.metrics.artifactBytes);
  $('progress-label').textContent += ' · verified, compiled and running';
  showMetrics(unit);
  return unit;
}

function showMetrics(unit) {
  const m = unit.metrics;
  $('m-fetch').textContent = ms(m.fetchMs);
  $('m-verify').textContent = ms(m.verifyMs);
  $('m-compile').textContent = ms(m.compileMs);
  $('m-init').textContent = ms(m.initMs);
  $('m-total').textContent = ms(m.totalMs);
  $('m-size').textContent = formatBytes(m.artifactBytes);
  $('m-size').title = `${m.artifactBytes} bytes of wasm`;
  $('m-bytes').textContent = formatBytes(m.bytesFetched);
  $('m-key').textContent = unit.signedBy;
  $('m-manifest').textContent = unit.manifestDigest;
}

async function greet(unit) {
  const button = $('greet');
  button.disabled = true;
  const t = performance.now();
  try {
    const { greeting } = await unit.call('greet', { name: $('name').value }).result;
    $('greeting').textContent = greeting;
    $('call-ms').textContent = ms(performance.now() - t);
    clearError();
  } catch (e) {
    $('greeting').textContent = '';
    showError(e);
  } finally {
    button.disabled = false;
  }
}

main().then((unit) => {
  document.body.dataset.state = 'ready';
  $('greet-form').addEventListener('submit', (ev) => { ev.preventDefault(); greet(unit); });
  $('greet').disabled = false;
  return greet(unit);
}, (e) => {
  document.body.dataset.state = 'error';
  failStage();
  showError(e);
});
