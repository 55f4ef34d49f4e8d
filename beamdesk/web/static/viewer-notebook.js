// "Open in a notebook" on the viewer page: the viewer keeps the open file and HDF5 path in
// the URL (?file=…&path=…), so the form takes them from there at the moment it is sent.
const form = document.querySelector('[data-testid="viewer-notebook"]');
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
  });
}
