// "Open in a notebook" on the viewer page: the viewer keeps the open file and HDF5 path in
// the URL (?file=…&path=…), so the form takes them from there at the moment it is sent,
// with the slice H5Web shows (its slicing sliders) as `selection`: the notebook then loads
// the frame or line on screen, not the whole dataset.
const form = document.querySelector('[data-testid="viewer-notebook"]');

/**
 * H5Web's slice, read from its DOM like the viewer's own bar does: one member per
 * dimension up to the last slider, the slider's index or ':' for a dimension on an axis
 * (H5Web labels each slider `h5w-slider-<dim>-label`); '' when nothing is sliced.
 */
function h5webSelection() {
  const root = document.querySelector('[data-testid="h5web"]');
  if (!root || root.hidden) {
    return ''; // another view (frame player, overlay) is on screen
  }
  const labels = root.querySelectorAll('[id^="h5w-slider-"][id$="-label"]');
  const dims = Array.from(labels, (el) => Number(el.id.split('-')[2])).filter(Number.isInteger);
  if (dims.length === 0) {
    return '';
  }
  const members = [];
  for (let d = 0; d <= Math.max(...dims); d += 1) {
    const label = root.querySelector(`#h5w-slider-${d}-label`);
    const thumb = root.querySelector(`[role="slider"][aria-labelledby="h5w-slider-${d}-label"]`);
    const value = thumb && thumb.getAttribute('aria-valuenow');
    members.push(label ? (/^\d+$/.test(value || '') ? value : '0') : ':');
  }
  return members.join(',');
}

if (form) {
  form.addEventListener('submit', (event) => {
    const query = new URL(window.location.href).searchParams;
    const file = query.get('file') || form.elements.file.value;
    if (!file) {
      event.preventDefault();
      window.alert('Open a file in the viewer first.');
      return;
    }
    form.elements.file.value = file;
    form.elements.path.value = query.get('path') || '';
    let selection = form.querySelector('input[name="selection"]');
    if (!selection) {
      selection = document.createElement('input');
      selection.type = 'hidden';
      selection.name = 'selection';
      form.append(selection);
    }
    // A viewer that knows better (e.g. the frame player's frame) may publish its own.
    const published = document.querySelector('[data-notebook-selection]');
    selection.value = published
      ? published.getAttribute('data-notebook-selection') || ''
      : h5webSelection();
  });
}
